"""The home page use case: a member's rows from their events in the store and the served model.

The member's events are folded into the model, so a new play or rating
changes the rows on the next request — no retraining.  A built page is kept
per process, keyed by the member's ``revision`` (bumped with every new
event of theirs), the model version and the A/B cell: a new event, a
promotion or a new test makes it stale at once.  What changes slowly is
cached for ``ttl`` seconds: a region's available titles, its top 10, the
running A/B test — and so the pages built from them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Engine, select

from openflix.recs.rows import home_rows
from openflix.registry.ab import TestInfo, active_test, assign
from openflix.services.serving import ModelHolder, Served
from openflix.store.catalog import MemberRow, TitleRow, get_member, titles_by_id
from openflix.store.db import translating
from openflix.store.events import latest_time, member_events, top_titles
from openflix.store.schema import TitleRegion

__all__ = ["HomePage", "HomeService", "continue_watching"]

T = TypeVar("T")

DAY = 86_400
FINISHED = 0.9
"""A play that reached this share of the duration counts as finished."""
HISTORY_EVENTS = 1_000
"""The newest events of a member folded into the model."""
PAGES_KEPT = 20_000
"""Built home pages kept per process (least recently built dropped first)."""


@dataclass(frozen=True)
class HomePage:
    """A member's home page: which model version (and A/B cell) made it, and its rows."""

    member_id: int
    region: str
    version: int
    cell: str | None
    rows: list[dict[str, Any]]


def continue_watching(events: pd.DataFrame) -> list[int]:
    """Title ids whose latest play stopped between the start and :data:`FINISHED`, newest first."""
    plays = events[(events["kind"] == "play") & events["duration_s"].notna() & (events["duration_s"] > 0)]
    if plays.empty:
        return []
    last = plays.drop_duplicates("title_id", keep="last")
    share = last["position_s"].fillna(0) / last["duration_s"]
    started = last[(share > 0) & (share < FINISHED)]
    return [int(t) for t in started["title_id"].iloc[::-1]]


class HomeService:
    """Builds home pages; one per serving process."""

    def __init__(self, engine: Engine, holder: ModelHolder, *, ttl: float = 60.0) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = ttl
        self._cache: dict[Any, tuple[float, Any]] = {}
        self._pages: OrderedDict[tuple[Any, ...], tuple[float, HomePage]] = OrderedDict()

    def _cached(self, key: Any, make: Callable[[], T], ttl: float | None = None) -> T:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < (self.ttl if ttl is None else ttl):
            return hit[1]  # type: ignore[no-any-return]
        value = make()
        self._cache[key] = (now, value)
        return value

    def _available(self, conn: Connection, served: Served, region: str) -> npt.NDArray[np.bool_]:
        def make() -> npt.NDArray[np.bool_]:
            ids = np.fromiter(
                conn.scalars(select(TitleRegion.title_id).where(TitleRegion.region == region)), dtype=np.int64
            )
            mask = np.zeros(served.model.n_items, dtype=bool)
            idx = served.indices(ids)
            mask[idx[idx >= 0]] = True
            return mask

        return self._cached(("available", served.version, region), make)

    def _top10(self, conn: Connection, region: str) -> list[int]:
        def make() -> list[int]:
            now = latest_time(conn)
            if now is None:
                return []
            window = DAY
            while True:
                top = top_titles(conn, region, now - window, now, 10)
                if len(top) >= 10 or window > 400 * DAY:
                    return [t for t, _ in top]
                window *= 7

        return self._cached(("top10", region), make)

    def _test(self, conn: Connection) -> TestInfo | None:
        return self._cached(("ab",), lambda: active_test(conn), ttl=min(self.ttl, 5.0))

    def forget(self) -> None:
        """Drop every cached value and page, as if ``ttl`` seconds had passed."""
        self._cache.clear()
        self._pages.clear()

    def warm_up(self) -> None:
        """Load the production model and run its scoring once (compiles kernels before traffic)."""
        served = self.holder.current()
        home_rows(served.model, served.context, [0], None, np.ones(served.model.n_items, dtype=bool))

    def home(self, member_id: int, *, n: int = 10) -> HomePage:
        """The rows of ``member_id``'s home page (see :mod:`openflix.recs.rows`)."""
        with translating(self.engine), self.engine.connect() as conn:
            member = get_member(conn, member_id)
            test = self._test(conn)
            cell = None
            if test is not None:
                j = int(assign(test, [member_id])[0])
                cell = test.cells[j].name
                served = self.holder.get(test.cells[j].version)
            else:
                served = self.holder.current()
            key = (member_id, member.revision, served.version, cell, n)
            hit = self._pages.get(key)
            now = time.monotonic()
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
            page = self._build(conn, member, served, cell, n)
        self._pages[key] = (now, page)
        while len(self._pages) > PAGES_KEPT:
            self._pages.popitem(last=False)
        return page

    def _build(
        self, conn: Connection, member: MemberRow, served: Served, cell: str | None, n: int
    ) -> HomePage:
        """Fold the member's newest events into ``served`` and cut the scores into rows."""
        events = member_events(conn, member.id, limit=HISTORY_EVENTS)
        idx = served.indices(events["title_id"].to_numpy(np.int64)) if len(events) else np.empty(0, np.int64)
        known = idx >= 0
        continuing = served.indices(continue_watching(events))
        top = served.indices(self._top10(conn, member.region))
        rows = home_rows(
            served.model,
            served.context,
            idx[known],
            events["ts"].to_numpy(np.int64)[known] if len(events) else None,
            self._available(conn, served, member.region),
            continue_watching=continuing[continuing >= 0],
            top_region=top[top >= 0],
            region=member.region,
            n=n,
        )
        ids = np.asarray(served.model.item_ids)
        titles = titles_by_id(conn, sorted({int(ids[i]) for r in rows for i in r.items}))
        rows_out = [
            {
                "id": r.id,
                "title": r.title,
                "reason": r.reason,
                "items": [_title(titles[int(ids[i])]) for i in r.items if int(ids[i]) in titles],
            }
            for r in rows
        ]
        return HomePage(member.id, member.region, served.version, cell, rows_out)


def _title(t: TitleRow) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "year": t.year, "genres": t.genres}
