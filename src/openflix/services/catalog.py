"""Use cases of the catalog: import a dataset into the store, read it back for training.

An import is one transaction: titles, members and events of a dataset are
all written, or — on any error — nothing is.  Events carry an idempotency key
derived from (member, title, time, kind), so importing the same file twice
adds nothing the second time.

MovieLens and the Netflix Prize have no geography and no licensing: members
are spread over the configured regions by a hash of their id, and every
imported title is available in every region (operators change availability
through the API).  These are documented choices, not data.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine, func, select, update

from openflix.errors import DataError
from openflix.recs.data import Interactions
from openflix.store.bulk import insert_ignore
from openflix.store.db import translating
from openflix.store.schema import CATALOG_ID_MAX, Event, Member, Title, TitleRegion

__all__ = [
    "ImportReport",
    "import_interactions",
    "interactions_from_store",
    "region_of",
    "split_title",
]

Progress = Callable[[str], None]

PLAY_VALUE = 4.0
"""Value a play without a rating carries when a rating model trains on the store."""


@dataclass(frozen=True)
class ImportReport:
    """What an import added (rows already present are skipped, not counted)."""

    titles: int
    members: int
    events: int
    skipped_events: int
    seconds: float


def region_of(member_ids: npt.ArrayLike, regions: Sequence[str]) -> npt.NDArray[np.object_]:
    """Deterministic region of each member id: a multiplicative hash of the id, modulo the regions."""
    if not regions:
        raise DataError("no regions configured: set OPENFLIX_REGIONS, e.g. 'us,br,gb'")
    ids = np.asarray(member_ids, dtype=np.int64).astype(np.uint64)
    slot = ((ids * np.uint64(2654435761)) % np.uint64(2**32)) % np.uint64(len(regions))
    return np.asarray(regions, dtype=object)[slot.astype(np.int64)]


def split_title(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``"Heat (1995)"`` -> name ``"Heat"`` and year 1995 (``<NA>`` when the title has none)."""
    parts = titles.astype(str).str.extract(r"^(?P<name>.*?)\s*\((?P<year>\d{4})\)\s*$")
    name = parts["name"].fillna(titles.astype(str)).str.strip()
    year = pd.to_numeric(parts["year"], errors="coerce").astype("Int64")
    return name, year


def _whole_number(value: float) -> bool:
    return math.isfinite(value) and float(value).is_integer()


def _whole_text(value: object) -> bool:
    return re.fullmatch(r"\s*[+-]?[0-9]+\s*", str(value)) is not None


def _integer_ids(ids: npt.NDArray[Any], what: str) -> npt.NDArray[np.int64]:
    if ids.dtype.kind not in "iu":
        # ids that are all whole numbers are read as integers: name one that is not
        whole = _whole_number if ids.dtype.kind == "f" else _whole_text  # 1.0 is whole, "1.0" is not
        odd = next((i for i in ids.tolist() if not whole(i)), None)
        detail = (
            f"are not all whole numbers (e.g. {odd!r})"
            if odd is not None
            else f"are decimals (e.g. {ids[:1].tolist()[0]!r})"  # whole numbers of a float column
        )
        raise DataError(
            f"the store keeps whole-number {what} ids, but this dataset's {what} ids {detail}; "
            "map them to integers first"
        )
    outside = (ids < 0) | (ids > CATALOG_ID_MAX) if ids.size else np.zeros(0, dtype=bool)
    if outside.any():  # an id past int64 would wrap around to a negative one
        raise DataError(
            f"the store keeps {what} ids in 0..2**62, but this dataset has {what} id {ids[outside][0]}; "
            "map them into that range first"
        )
    return ids.astype(np.int64)


def import_interactions(
    engine: Engine,
    data: Interactions,
    regions: Sequence[str],
    *,
    progress: Progress | None = None,
) -> ImportReport:
    """Write the titles, members and events of ``data`` in one transaction."""
    t0 = time.perf_counter()
    title_ids = _integer_ids(np.asarray(data.item_ids), "title")
    member_ids = _integer_ids(np.asarray(data.user_ids), "member")
    now = int(time.time())
    say = progress or (lambda _msg: None)
    with translating(engine), engine.begin() as conn:
        known_titles = np.fromiter(conn.scalars(select(Title.id)), dtype=np.int64)
        new_t = ~np.isin(title_ids, known_titles)
        if data.item_info is not None:
            name, year = split_title(pd.Series(data.item_info.titles[new_t]))
            genres = pd.Series(data.item_info.genres[new_t]).astype(str).replace("(no genres listed)", "")
        else:
            name = pd.Series([f"Title {i}" for i in title_ids[new_t]])
            year = pd.Series([None] * int(new_t.sum()), dtype="Int64")
            genres = pd.Series([""] * int(new_t.sum()))
        titles = pd.DataFrame({"id": title_ids[new_t], "name": name, "year": year, "genres": genres})
        say(f"titles: {len(titles):,} new")
        insert_ignore(conn, Title.__table__, titles)  # type: ignore[arg-type]
        avail = pd.DataFrame(
            {
                "title_id": np.repeat(title_ids[new_t], len(regions)),
                "region": np.tile(np.asarray(regions, dtype=object), int(new_t.sum())),
            }
        )
        insert_ignore(conn, TitleRegion.__table__, avail)  # type: ignore[arg-type]

        known_members = np.fromiter(conn.scalars(select(Member.id)), dtype=np.int64)
        new_m = member_ids[~np.isin(member_ids, known_members)]
        region = region_of(new_m, regions)
        members = pd.DataFrame(
            {
                "id": new_m,
                "name": pd.Series(new_m).map("Member {}".format).to_numpy(),
                "region": region,
                "country": pd.Series(region).str.upper().str[:2].to_numpy(),
                "created_at": now,
            }
        )
        say(f"members: {len(members):,} new")
        insert_ignore(conn, Member.__table__, members)  # type: ignore[arg-type]

        before = conn.scalar(select(func.count()).select_from(Event)) or 0
        kind = "rating" if data.has_ratings else "play"
        m = pd.Series(member_ids[data.users])
        t = pd.Series(title_ids[data.items])
        ts = pd.Series(data.timestamps)
        keys = "import:" + m.astype(str) + ":" + t.astype(str) + ":" + ts.astype(str) + ":" + kind
        events = pd.DataFrame(
            {
                "member_id": m,
                "title_id": t,
                "kind": kind,
                "rating": pd.Series(data.ratings, dtype=float) if data.has_ratings else None,
                "ts": ts,
                "idempotency_key": keys,
            }
        )
        insert_ignore(
            conn,
            Event.__table__,  # type: ignore[arg-type]
            events,
            progress=lambda done, total: say(f"events: {done:,} of {total:,}"),
        )
        added = (conn.scalar(select(func.count()).select_from(Event)) or 0) - before
        if added:  # events of many members changed: every cached home page is stale
            conn.execute(update(Member).values(revision=Member.revision + 1))
    return ImportReport(
        titles=int(new_t.sum()),
        members=len(new_m),
        events=int(added),
        skipped_events=len(events) - int(added),
        seconds=time.perf_counter() - t0,
    )


def interactions_from_store(engine: Engine) -> Interactions:
    """Every event of the store as :class:`Interactions`, with titles and genres.

    Ratings keep their value; a play without a rating counts as :data:`PLAY_VALUE`.
    """
    with translating(engine), engine.connect() as conn:
        events = pd.read_sql_query(
            select(Event.member_id, Event.title_id, Event.rating, Event.ts).order_by(Event.ts, Event.id),
            conn,
        )
        titles = pd.read_sql_query(select(Title.id, Title.name, Title.year, Title.genres), conn)
    if events.empty:
        raise DataError("the store holds no events: import a dataset first (openflix db import)")
    year = titles["year"].astype("Int64").astype(str)
    shown = titles["name"].where(year == "<NA>", titles["name"] + " (" + year + ")")
    info = dict(
        zip(titles["id"].tolist(), zip(shown.tolist(), titles["genres"].tolist(), strict=True), strict=True)
    )
    return Interactions.from_ids(
        events["member_id"].to_numpy(np.int64),
        events["title_id"].to_numpy(np.int64),
        events["rating"].fillna(PLAY_VALUE).to_numpy(np.float32),
        events["ts"].to_numpy(np.int64),
        item_info=info,
        source="store",
    )
