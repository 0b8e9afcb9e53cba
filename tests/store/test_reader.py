"""The member read of every home request: fresh after each commit, on every thread, holding no snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text, update

from openflix.errors import NotFoundError, UnavailableError
from openflix.store.db import connect, upgrade
from openflix.store.reader import MemberReader
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
    reader = MemberReader(engine)
    assert reader.direct is database_url.startswith("sqlite")
    first = reader.get(7)
    assert (first.id, first.name, first.region, first.country, first.revision) == (7, "Ada", "us", "US", 0)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.id == 7).values(revision=Member.revision + 1, region="gb"))
    again = reader.get(7)
    assert (again.revision, again.region) == (1, "gb")
    with pytest.raises(NotFoundError, match="member 8 does not exist"):
        reader.get(8)
    reader.close()
    assert reader.get(7).revision == 1  # a read after close() opens a new connection
    reader.close()
    engine.dispose()


def test_no_read_transaction_stays_open_between_reads(tmp_path: Path) -> None:
    """A reader's snapshot would keep the WAL from being checkpointed back into the database file."""
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = MemberReader(engine)
    reader.get(7)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.id == 7).values(revision=5))
    with engine.connect() as conn:
        busy, _, _ = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    assert busy == 0
    assert (tmp_path / "openflix.db-wal").stat().st_size == 0
    assert reader.get(7).revision == 5
    reader.close()
    engine.dispose()


def test_each_thread_reads_on_its_own_connection(tmp_path: Path) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = MemberReader(engine)
    seen: list[int] = []

    def read() -> None:
        for _ in range(200):
            seen.append(reader.get(7).id)

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
    reader = MemberReader(engine)
    assert not reader.direct
    assert reader.get(7).name == "Ada"
    engine.dispose()


def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'openflix.db'}")
    reader = MemberReader(engine)
    reader._path = str(tmp_path / "missing" / "openflix.db")  # a folder that does not exist
    with pytest.raises(UnavailableError, match="cannot be reached"):
        reader.get(7)
    engine.dispose()
