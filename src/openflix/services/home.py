"""The home page use case: a member's rows from their events in the store and the served model.

The member's events are folded into the model, so a new play or rating
changes the rows on the next request — no retraining.

What changes slowly is cached per process and renewed in the background
every ``ttl`` seconds: a region's available titles, its top 10 and the
running A/B test; the titles (names, years, genres, encoded once as page
items) every ten times ``ttl``.  A built page is kept, keyed by everything
it shows: the member's ``revision`` (bumped with every new event of theirs),
the model version, the A/B cell, and the generations of those caches (bumped
when a renewal finds them changed).  So a page is rebuilt exactly when
something on it may have changed — or after an hour at most.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, select

from openflix.recs.rows import home_rows
from openflix.registry.ab import TestInfo, active_test, assign
from openflix.services.serving import ModelHolder, Served
from openflix.store.catalog import MemberRow, TitleRow, read_member, titles_by_id
from openflix.store.db import translating
from openflix.store.events import MemberEvents, earliest_time, latest_time, member_events, top_titles
from openflix.store.reader import HotReader
from openflix.store.schema import Member, TitleRegion

__all__ = ["HomePage", "HomeService", "continue_watching"]

T = TypeVar("T")

DAY = 86_400
FINISHED = 0.9
"""A play that reached this share of the duration counts as finished."""
HISTORY_EVENTS = 1_000
"""The newest events of a member folded into the model."""
PAGE_TTL = 3_600.0
"""Seconds a built page is kept at most; it is rebuilt sooner when anything it shows changed."""
ITEMS_TTL_FACTOR = 10
"""The titles cache is renewed this many times less often than the region caches."""
PAGES_KEPT = 20_000
"""Built home pages kept per process (least recently built dropped first)."""


@dataclass(frozen=True)
class HomePage:
    """A member's home page: which model version (and A/B cell) made it, and its rows.

    The page is kept as its UTF-8 JSON ``body``, encoded once when it is
    built: a cached page is sent as it is, and holds no Python objects for
    the garbage collector to walk.
    """

    member_id: int
    region: str
    version: int
    cell: str | None
    body: bytes = field(repr=False)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows, each ``{id, title, reason, items: [{id, name, year, genres}]}``."""
        return self.as_dict()["rows"]  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, Any]:
        """The page as the API sends it."""
        return json.loads(self.body)  # type: ignore[no-any-return]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def continue_watching(events: MemberEvents) -> npt.NDArray[np.int64]:
    """Title ids whose latest play stopped between the start and :data:`FINISHED`, newest first."""
    plays = np.flatnonzero((events.kind == "play") & (events.duration_s > 0))
    if plays.size == 0:
        return np.empty(0, dtype=np.int64)
    newest_first = plays[::-1]
    _, first = np.unique(events.title_id[newest_first], return_index=True)
    last = np.sort(newest_first[first])[::-1]  # each title's latest play, newest first
    share = np.nan_to_num(events.position_s[last]) / events.duration_s[last]
    return events.title_id[last[(share > 0) & (share < FINISHED)]]


class HomeService:
    """Builds home pages; one per serving process."""

    def __init__(
        self, engine: Engine, holder: ModelHolder, *, ttl: float = 60.0, reader: HotReader | None = None
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = ttl
        self._cache: dict[Any, tuple[float, Any, int]] = {}
        """Region caches and the running test: key -> (time made, value, generation)."""
        self._pages: OrderedDict[tuple[Any, ...], tuple[float, HomePage]] = OrderedDict()
        """Built pages and the monotonic time each expires."""
        self._renewing: set[Any] = set()
        self._epoch = 0
        """Bumped by :meth:`forget`: a value read before it is not kept after it."""
        self._forgetting = threading.Lock()
        """Makes a forget and the keeping of a value read before it one after the other."""
        self.reader = reader or HotReader(engine)
        """The member read of every request goes through it."""

    def _cached(self, key: Any, make: Callable[[], T], ttl: float | None = None) -> tuple[T, int]:
        """``make()``'s value and its generation, kept ``ttl`` seconds.

        A stale value is served while a thread renews it; the generation goes
        up only when the renewed value differs, so pages built from it are
        rebuilt only when what they show changed.
        """
        hit = self._cache.get(key)
        now = time.monotonic()
        epoch = self._epoch
        if hit is None:
            value = make()
            with self._forgetting:
                if self._epoch == epoch:  # else forgotten meanwhile: used once, not kept
                    self._cache[key] = (now, value, 0)
            return value, 0
        if now - hit[0] >= (self.ttl if ttl is None else ttl) and key not in self._renewing:
            self._renewing.add(key)

            def renew() -> None:
                try:
                    new = make()
                    with self._forgetting:
                        if self._epoch != epoch:  # forgotten meanwhile: what was read may be older
                            return
                        _, old, generation = self._cache.get(key, hit)
                        self._cache[key] = (time.monotonic(), new, generation + (not _same(new, old)))
                except Exception:
                    pass
                finally:
                    self._renewing.discard(key)

            threading.Thread(target=renew, name="openflix-renew", daemon=True).start()
        return hit[1], hit[2]

    def _available(self, served: Served, region: str) -> tuple[npt.NDArray[np.bool_], int]:
        def make() -> npt.NDArray[np.bool_]:
            with translating(self.engine), self.engine.connect() as conn:
                ids = np.fromiter(
                    conn.scalars(select(TitleRegion.title_id).where(TitleRegion.region == region)),
                    dtype=np.int64,
                )
            mask = np.zeros(served.model.n_items, dtype=bool)
            idx = served.indices(ids)
            mask[idx[idx >= 0]] = True
            return mask

        return self._cached(("available", served.version, region), make)

    def _top10(self, region: str) -> tuple[list[int], int]:
        def make() -> list[int]:
            with translating(self.engine), self.engine.connect() as conn:
                now, first = latest_time(conn), earliest_time(conn)
                if now is None or first is None:
                    return []
                window = DAY
                while True:  # until ten titles qualify, or the window holds every event
                    top = top_titles(conn, region, now - window, now, 10)
                    if len(top) >= 10 or now - window <= first:
                        return [t for t, _ in top]
                    window *= 7

        return self._cached(("top10", region), make)

    def _items(self, served: Served) -> tuple[list[str | None], int]:
        """Each of ``served``'s items as the JSON of a page item, by item index (``None``: no such title).

        The titles change rarely and every page shows some: encoded once per
        process, so building a page reads no title.  Renewed every
        :data:`ITEMS_TTL_FACTOR` × ``ttl`` seconds (reading and encoding
        9,000 titles takes about 0.1 s of the worker).
        """

        def make() -> list[str | None]:
            with translating(self.engine), self.engine.connect() as conn:
                titles = titles_by_id(conn, None)
            found = (titles.get(int(i)) for i in served.model.item_ids)
            return [None if t is None else _json(_title(t)) for t in found]

        return self._cached(("items", served.version), make, ttl=self.ttl * ITEMS_TTL_FACTOR)

    def _test(self) -> TestInfo | None:
        def make() -> TestInfo | None:
            with translating(self.engine), self.engine.connect() as conn:
                return active_test(conn)

        return self._cached(("ab",), make, ttl=min(self.ttl, 5.0))[0]

    def forget(self, *, pages_only: bool = False) -> None:
        """Drop the built pages and (unless ``pages_only``) every cached value.

        A renewal already running when the values are dropped keeps its result
        to itself, so nothing read before this call comes back after it.
        """
        self._pages.clear()
        if not pages_only:
            with self._forgetting:
                self._epoch += 1
                self._cache.clear()

    def warm_up(self) -> None:
        """Load the production model, run its scoring once, fill every region's caches — before traffic."""
        served = self.holder.current()
        home_rows(served.model, served.context, [0], None, np.ones(served.model.n_items, dtype=bool))
        with translating(self.engine), self.engine.connect() as conn:
            regions = list(conn.scalars(select(Member.region).distinct()))
        self._items(served)
        for region in regions:
            self._available(served, region)
            self._top10(region)

    def home(self, member_id: int, *, n: int = 10) -> HomePage:
        """The rows of ``member_id``'s home page (see :mod:`openflix.recs.rows`).

        A cached page costs one read (the member's region and revision, see
        :mod:`openflix.store.reader`); a pooled connection is
        taken only to build a page.
        """
        member = read_member(self.reader, member_id)
        test = self._test()
        cell = None
        if test is not None:
            j = int(assign(test, [member_id])[0])
            cell = test.cells[j].name
            served = self.holder.get(test.cells[j].version)
        else:
            served = self.holder.current()
        available, available_generation = self._available(served, member.region)
        top, top_generation = self._top10(member.region)
        items, items_generation = self._items(served)
        generations = (available_generation, top_generation, items_generation)
        key = (member_id, member.revision, served.version, cell, n, generations)
        hit = self._pages.get(key)
        now = time.monotonic()
        if hit is not None and now < hit[0]:
            return hit[1]
        with translating(self.engine), self.engine.connect() as conn:
            page = self._build(conn, member, served, cell, n, available, top, items)
        # a page expires at a random point of PAGE_TTL's second half: pages built in one burst (a
        # deploy, a promotion) are not all rebuilt in the same second
        self._pages[key] = (now + PAGE_TTL * (0.5 + 0.5 * random.random()), page)
        while len(self._pages) > PAGES_KEPT:
            self._pages.popitem(last=False)
        return page

    def _build(
        self,
        conn: Connection,
        member: MemberRow,
        served: Served,
        cell: str | None,
        n: int,
        available: npt.NDArray[np.bool_],
        top10: list[int],
        items: list[str | None],
    ) -> HomePage:
        """Fold the member's newest events into ``served`` and cut the scores into rows."""
        events = member_events(conn, member.id, limit=HISTORY_EVENTS)
        idx = served.indices(events.title_id)
        known = idx >= 0
        continuing = served.indices(continue_watching(events))
        top = served.indices(top10)
        rows = home_rows(
            served.model,
            served.context,
            idx[known],
            events.ts[known],
            available,
            continue_watching=continuing[continuing >= 0],
            top_region=top[top >= 0],
            region=member.region,
            n=n,
        )
        # the JSON of {member_id, region, version, cell, rows}, items spliced in as encoded by _items
        page = {"member_id": member.id, "region": member.region, "version": served.version, "cell": cell}
        head = _json(page)
        rows_json = ",".join(
            f'{{"id":{_json(r.id)},"title":{_json(r.title)},"reason":{_json(r.reason)},"items":['
            + ",".join(j for j in (items[i] for i in r.items) if j is not None)
            + "]}"
            for r in rows
        )
        body = f'{head[:-1]},"rows":[{rows_json}]}}'.encode()
        return HomePage(member.id, member.region, served.version, cell, body)


def _title(t: TitleRow) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "year": t.year, "genres": t.genres}


def _json(value: Any) -> str:
    """Compact JSON, non-ASCII kept as it is (the body is UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
