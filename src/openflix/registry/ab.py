"""A/B tests: members split deterministically into cells, each cell served by a model version.

A member's cell is a function of (test name, member id) only — SHA-256 of
``"<test>:<member>"`` mapped onto the cells' weights — so every server, and
every request, puts a member in the same cell without any shared state, and
two tests split members independently.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, insert, select, update

from openflix.errors import ConflictError, DataError, NotFoundError
from openflix.registry.versions import get_version
from openflix.store.events import recommendation_plays
from openflix.store.schema import ABTest

__all__ = ["Cell", "TestInfo", "active_test", "assign", "cell_counts", "create_test", "stop_test"]

BUCKETS = 10_000


@dataclass(frozen=True)
class Cell:
    """A cell of a test: its name, the model version serving it, and its share weight."""

    name: str
    version: int
    weight: float


@dataclass(frozen=True)
class TestInfo:
    """An A/B test and its cells."""

    name: str
    cells: tuple[Cell, ...]
    active: bool
    created_at: int


def _bucket(test: str, member_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    ids = np.atleast_1d(np.asarray(member_ids, dtype=np.int64))
    out = np.empty(ids.size, dtype=np.int64)
    for i, m in enumerate(ids.tolist()):  # SHA-256 per member: deterministic across processes
        out[i] = int.from_bytes(hashlib.sha256(f"{test}:{m}".encode()).digest()[:8], "big") % BUCKETS
    return out


def assign(test: TestInfo, member_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Index of each member's cell in ``test.cells``."""
    weights = np.array([c.weight for c in test.cells], dtype=np.float64)
    edges = np.cumsum(weights / weights.sum()) * BUCKETS
    return np.minimum(
        np.searchsorted(edges, _bucket(test.name, member_ids), side="right"), len(test.cells) - 1
    )


def _info(row: Any) -> TestInfo:
    return TestInfo(row.name, tuple(Cell(**c) for c in row.cells), row.active, row.created_at)


def create_test(conn: Connection, name: str, cells: list[dict[str, Any]]) -> TestInfo:
    """Start a test; only one test runs at a time (stop the running one first)."""
    if len(cells) < 2:
        raise DataError("a test needs at least two cells")
    names = [str(c.get("name", "")) for c in cells]
    if len(set(names)) != len(names) or not all(names):
        raise DataError(f"cell names must be unique and non-empty (got {names})")
    parsed = []
    for i, c in enumerate(cells):
        weight = float(c.get("weight", 1.0))
        if not weight > 0:
            raise DataError(f"cells[{i}].weight must be > 0 (got {weight})")
        get_version(conn, int(c["version"]))
        parsed.append({"name": names[i], "version": int(c["version"]), "weight": weight})
    if conn.scalar(select(ABTest.name).where(ABTest.name == name)) is not None:
        raise ConflictError(f"a test named {name!r} exists already; choose another name")
    running = active_test(conn)
    if running is not None:
        raise ConflictError(f"test {running.name!r} is running; stop it first")
    conn.execute(insert(ABTest).values(name=name, cells=parsed, active=True, created_at=int(time.time())))
    return get_test(conn, name)


def get_test(conn: Connection, name: str) -> TestInfo:
    row = conn.execute(select(ABTest.__table__).where(ABTest.name == name)).first()
    if row is None:
        raise NotFoundError(f"A/B test {name!r} does not exist")
    return _info(row)


def active_test(conn: Connection) -> TestInfo | None:
    """The running test, if any."""
    row = conn.execute(select(ABTest.__table__).where(ABTest.active.is_(True)).limit(1)).first()
    return None if row is None else _info(row)


def stop_test(conn: Connection, name: str) -> TestInfo:
    get_test(conn, name)
    conn.execute(update(ABTest).where(ABTest.name == name).values(active=False))
    return get_test(conn, name)


def cell_counts(conn: Connection, name: str) -> dict[str, dict[str, int]]:
    """Per cell: members with plays started from a recommendation since the test began, and those plays."""
    test = get_test(conn, name)
    members, plays = recommendation_plays(conn, test.created_at)
    out = {c.name: {"members": 0, "plays": 0} for c in test.cells}
    if members.size:
        cells = assign(test, members)
        for j, c in enumerate(test.cells):
            mask = cells == j
            out[c.name] = {"members": int(mask.sum()), "plays": int(plays[mask].sum())}
    return out
