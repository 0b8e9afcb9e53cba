"""The reads of every request: fresh after each commit, on every thread, holding no snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text, update

from openflix.errors import NotFoundError, UnavailableError
from openflix.store.catalog import read_member
from openflix.store.db import connect, upgrade
from openflix.store.reader import HotReader
from openflix.store.schema import Member
from tests.concurrency import run_in_threads

ADA = {"id": 7, "name": "Ada", "region": "us", "country": "US", "created_at": 0}


def _engine(url: str) -> Engine:
    engine = connect(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(Member), [ADA])
    return engine


def test_reads_the_member_and_each_committed_change(database_url: str) -> None:
    engine = _engine(database_url)
    reader = HotReader(engine)
    assert reader.direct is database_url.startswith("sqlite")
    first = read_member(reader, 7)
    assert (first.id, first.name, first.region, first.country, first.revision) == (7, "Ada", "us", "US", 0)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.id == 7).values(revision=Member.revision + 1, region="gb"))
    again = read_member(reader, 7)
    assert (again.revision, again.region) == (1, "gb")
    with pytest.raises(NotFoundError, match="member 8 does not exist"):
        read_member(reader, 8)
    reader.close()
    assert read_member(reader, 7).revision == 1  # a read after close() opens a new connection
    reader.close()
    engine.dispose()


def test_no_read_transaction_stays_open_between_reads(tmp_path: Path) -> None:
    """A reader's snapshot would keep the WAL from being checkpointed back into the database file."""
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = HotReader(engine)
    read_member(reader, 7)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.id == 7).values(revision=5))
    with engine.connect() as conn:
        busy, _, _ = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    assert busy == 0
    assert (tmp_path / "openflix.db-wal").stat().st_size == 0
    assert read_member(reader, 7).revision == 5
    reader.close()
    engine.dispose()


def test_each_thread_reads_on_its_own_connection(tmp_path: Path) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = HotReader(engine)
    seen: list[int] = []

    def read() -> None:
        for _ in range(200):
            seen.append(read_member(reader, 7).id)

    errors = run_in_threads(read, 4)
    assert not errors and seen == [7] * 800
    assert len(reader._open) == 4  # one per thread, not one per read
    reader.close()
    assert reader._open == []
    engine.dispose()


def test_in_memory_sqlite_reads_through_the_pool() -> None:
    """Only the pool's connection sees an in-memory database."""
    from sqlalchemy.pool import StaticPool

    engine = connect("sqlite://", poolclass=StaticPool)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(Member), [ADA])
    reader = HotReader(engine)
    assert not reader.direct
    assert read_member(reader, 7).name == "Ada"
    engine.dispose()


def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = HotReader(engine)
    reader._path = str(tmp_path / "missing" / "openflix.db")  # a folder that does not exist
    with pytest.raises(UnavailableError, match="cannot be reached"):
        read_member(reader, 7)
    engine.dispose()


def test_counters_through_the_reader_follow_every_bump(database_url: str) -> None:
    """Steering compares them at every decision: a change must show at the very next read."""
    from openflix.store import cdn as store

    engine = _engine(database_url)
    reader = HotReader(engine)
    assert store.read_counters(reader) == (0, 0, 0)  # none bumped yet
    with engine.begin() as conn:
        store.bump(conn, "inventory", "health", "placement")
    with engine.connect() as conn:
        before = store.counters(conn)
    assert store.read_counters(reader) == before
    with engine.begin() as conn:
        store.bump(conn, "health")
    after = store.read_counters(reader)
    assert after == (before[0], before[1] + 1, before[2])
    assert store.read_counters(reader, ("placement", "components")) == (before[2], 0)
    reader.close()
    engine.dispose()
