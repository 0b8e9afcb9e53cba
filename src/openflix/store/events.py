"""Viewing events: idempotent ingest, a member's history, what a region watched lately."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, bindparam, func, select, update

from openflix.errors import ConflictError, DataError
from openflix.store.bulk import insert_statement
from openflix.store.schema import Event, Member, Title

__all__ = [
    "EventIn",
    "MemberEvents",
    "add_events",
    "earliest_time",
    "latest_time",
    "member_events",
    "recommendation_plays",
    "top_titles",
]

CONTENT = ("member_id", "title_id", "kind", "rating", "position_s", "duration_s", "ts", "device", "source")
"""Fields an idempotency key stands for: a reused key must come with the same values."""


@dataclass(frozen=True)
class EventIn:
    """One event to ingest; ``ts`` in Unix seconds, positions and durations in seconds."""

    member_id: int
    title_id: int
    kind: str
    ts: int
    rating: float | None = None
    position_s: int | None = None
    duration_s: int | None = None
    device: str | None = None
    source: str | None = None
    idempotency_key: str | None = None
    client_ip: str | None = None
    """Where the play came from (canonical IPv4 or IPv6 text); not part of what the key stands for."""

    def key(self) -> str:
        """The idempotency key: the given one, or a digest of the content (a retry dedups either way)."""
        if self.idempotency_key:
            return self.idempotency_key
        text = "|".join(str(getattr(self, f)) for f in CONTENT)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def add_events(conn: Connection, events: Sequence[EventIn]) -> list[tuple[int, bool]]:
    """Store ``events`` in the caller's transaction; ``(event id, created)`` for each.

    An event whose idempotency key is stored already is not stored again
    (``created`` is false).  A key stored with different content raises
    :class:`ConflictError`; an unknown member or title raises :class:`DataError`
    naming the event — and the caller's transaction writes nothing.
    """
    if not events:
        return []
    _check_refs(conn, events)
    keys = [e.key() for e in events]
    if len(set(keys)) != len(keys):
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in seen and _content(events[seen[k]]) != _content(events[i]):
                raise ConflictError(f"events[{seen[k]}] and events[{i}] share idempotency key {k!r}")
            seen.setdefault(k, i)
    existing = _by_key(conn, keys)
    rows = []
    for e, k in zip(events, keys, strict=True):
        if k in existing:
            continue
        row = {f: getattr(e, f) for f in CONTENT}
        row["idempotency_key"] = k
        row["client_ip"] = e.client_ip
        rows.append(row)
    if rows:
        conn.execute(insert_statement(conn, Event.__table__), rows)  # type: ignore[arg-type]
        touched = sorted({int(r["member_id"]) for r in rows})
        conn.execute(update(Member).where(Member.id.in_(touched)).values(revision=Member.revision + 1))
    stored = _by_key(conn, keys)
    out = []
    for i, (e, k) in enumerate(zip(events, keys, strict=True)):
        row_id, content = stored[k]
        if content != _content(e):
            raise ConflictError(
                f"events[{i}]: idempotency key {k!r} was used before for another event "
                f"(event {row_id}); send a new key for a new event"
            )
        out.append((row_id, k not in existing))
    return out


def _content(event: EventIn) -> tuple[object, ...]:
    return tuple(getattr(event, f) for f in CONTENT)


def _check_refs(conn: Connection, events: Sequence[EventIn]) -> None:
    members = {e.member_id for e in events}
    titles = {e.title_id for e in events}
    known_m = set(conn.scalars(select(Member.id).where(Member.id.in_(members))))
    known_t = set(conn.scalars(select(Title.id).where(Title.id.in_(titles))))
    for i, e in enumerate(events):
        if e.member_id not in known_m:
            raise DataError(f"events[{i}].member_id: member {e.member_id} does not exist")
        if e.title_id not in known_t:
            raise DataError(f"events[{i}].title_id: title {e.title_id} does not exist")


def _by_key(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, tuple[object, ...]]]:
    cols = [getattr(Event, f) for f in CONTENT]
    out: dict[str, tuple[int, tuple[object, ...]]] = {}
    unique = list(dict.fromkeys(keys))
    for lo in range(0, len(unique), 5000):
        stmt = select(Event.idempotency_key, Event.id, *cols).where(
            Event.idempotency_key.in_(unique[lo : lo + 5000])
        )
        for row in conn.execute(stmt):
            out[row[0]] = (int(row[1]), tuple(row[2:]))
    return out


@dataclass(frozen=True)
class MemberEvents:
    """A member's events, oldest first, as aligned ``(k,)`` arrays (missing numbers are NaN).

    Times ``ts`` are Unix seconds; ``position_s`` and ``duration_s`` seconds.
    """

    id: npt.NDArray[np.int64]
    title_id: npt.NDArray[np.int64]
    kind: npt.NDArray[np.object_]
    rating: npt.NDArray[np.float64]
    position_s: npt.NDArray[np.float64]
    duration_s: npt.NDArray[np.float64]
    ts: npt.NDArray[np.int64]
    device: npt.NDArray[np.object_]
    source: npt.NDArray[np.object_]
    client_ip: npt.NDArray[np.object_]
    """The address a play came from (``None`` when the event carries none)."""

    def __len__(self) -> int:
        return len(self.id)

    def records(self) -> list[dict[str, Any]]:
        """One dict per event, newest first, with ``None`` for missing values."""
        out = []
        for i in range(len(self) - 1, -1, -1):
            row: dict[str, Any] = {f.name: getattr(self, f.name)[i] for f in fields(self)}
            for k in ("rating", "position_s", "duration_s"):
                v = row[k]
                row[k] = None if np.isnan(v) else (float(v) if k == "rating" else int(v))
            row["id"], row["title_id"], row["ts"] = int(row["id"]), int(row["title_id"]), int(row["ts"])
            out.append(row)
        return out


_EVENTS = (
    select(
        Event.id,
        Event.title_id,
        Event.kind,
        Event.rating,
        Event.position_s,
        Event.duration_s,
        Event.ts,
        Event.device,
        Event.source,
        Event.client_ip,
    )
    .where(Event.member_id == bindparam("member_id"))
    .order_by(Event.ts.desc(), Event.id.desc())
)
_NEWEST_EVENTS = _EVENTS.limit(bindparam("limit"))
"""Built once: building the statement cost twice as much as running it (every home page build reads it)."""


def member_events(conn: Connection, member_id: int, *, limit: int | None = None) -> MemberEvents:
    """A member's events, oldest first; with ``limit``, only the newest ``limit`` of them."""
    if limit is None:
        result = conn.execute(_EVENTS, {"member_id": member_id})
    else:
        result = conn.execute(_NEWEST_EVENTS, {"member_id": member_id, "limit": limit})
    rows = result.fetchall()[::-1]
    columns = list(zip(*rows, strict=True)) if rows else [()] * 10

    def numbers(values: tuple[Any, ...]) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    return MemberEvents(
        id=np.array(columns[0], dtype=np.int64),
        title_id=np.array(columns[1], dtype=np.int64),
        kind=np.array(columns[2], dtype=object),
        rating=numbers(columns[3]),
        position_s=numbers(columns[4]),
        duration_s=numbers(columns[5]),
        ts=np.array(columns[6], dtype=np.int64),
        device=np.array(columns[7], dtype=object),
        source=np.array(columns[8], dtype=object),
        client_ip=np.array(columns[9], dtype=object),
    )


def latest_time(conn: Connection) -> int | None:
    """Time of the newest event in the store (Unix seconds), the clock of "today"."""
    value = conn.scalar(select(func.max(Event.ts)))
    return None if value is None else int(value)


def earliest_time(conn: Connection) -> int | None:
    """Time of the oldest event in the store (Unix seconds)."""
    value = conn.scalar(select(func.min(Event.ts)))
    return None if value is None else int(value)


def top_titles(conn: Connection, region: str, since: int, until: int, n: int) -> list[tuple[int, int]]:
    """The ``n`` titles most watched or rated by members of ``region`` in ``[since, until]``, with counts."""
    stmt = (
        select(Event.title_id, func.count().label("n"))
        .join(Member, Member.id == Event.member_id)
        .where(Member.region == region, Event.ts >= since, Event.ts <= until)
        .group_by(Event.title_id)
        .order_by(func.count().desc(), Event.title_id)
        .limit(n)
    )
    return [(int(t), int(c)) for t, c in conn.execute(stmt)]


def recommendation_plays(conn: Connection, since: int) -> tuple[np.ndarray, np.ndarray]:
    """Members with plays started from a recommendation since ``since``, and their play counts."""
    stmt = (
        select(Event.member_id, func.count())
        .where(Event.kind == "play", Event.source.like("home:%"), Event.ts >= since)
        .group_by(Event.member_id)
    )
    rows = conn.execute(stmt).fetchall()
    members = np.array([r[0] for r in rows], dtype=np.int64)
    counts = np.array([r[1] for r in rows], dtype=np.int64)
    return members, counts
