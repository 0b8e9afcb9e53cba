"""The reads of every request: fresh after each commit, on every thread, holding no snapshot."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

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
    assert reader.direct  # a connection of its own per thread, on both
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


def test_a_colon_or_percent_inside_quotes_is_text_not_a_parameter(database_url: str) -> None:
    engine = _engine(database_url)
    reader = HotReader(engine)
    sql = """SELECT 'at :name, it''s 5%' AS "a:b", name AS "x"":y" FROM members
             WHERE id = :id AND name <> ':id'"""
    assert reader.rows(sql, {"id": 7}) == [("at :name, it's 5%", "Ada")]
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


def test_threads_reading_at_once_take_a_connection_each(database_url: str) -> None:
    engine = _engine(database_url)
    reader = HotReader(engine)
    seen: list[int] = []

    def read() -> None:
        for _ in range(200):
            seen.append(read_member(reader, 7).id)

    errors = run_in_threads(read, 4)
    assert not errors and seen == [7] * 800
    assert 1 <= reader.opened <= 4  # at most one per read at once, not one per read
    reader.close()
    assert reader.opened == 0
    engine.dispose()


def test_a_thread_per_request_reuses_the_connections_of_finished_threads(database_url: str) -> None:
    """A server that starts a thread for each request must not open a connection for each: the
    development server does, and PostgreSQL refuses clients past max_connections."""
    import threading

    engine = _engine(database_url)
    reader = HotReader(engine)
    for _ in range(30):
        thread = threading.Thread(target=read_member, args=(reader, 7))
        thread.start()
        thread.join()
    assert reader.opened == 1
    reader.close()
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


def _pg_engine() -> Engine:
    from tests.conftest import fresh_postgres

    return _engine(fresh_postgres())


def test_a_postgres_connection_the_server_dropped_is_opened_again() -> None:
    """As the pool's ping would: a server restart (here: the reader's session ended) costs one retry."""
    engine = _pg_engine()
    reader = HotReader(engine)
    (pid,) = reader.rows("SELECT pg_backend_pid()", {})[0]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
    assert read_member(reader, 7).name == "Ada"
    (other,) = reader.rows("SELECT pg_backend_pid()", {})[0]
    assert other != pid and reader.opened == 1
    reader.close()
    engine.dispose()


def test_a_postgres_socket_that_hung_up_unseen_is_opened_again() -> None:
    """psycopg says "connection socket closed" when the socket hangs up before the server's goodbye is
    read, and leaves the connection unmarked: it failed the read instead of retrying (seen once under
    a full test run; staged here, as the timing cannot be)."""
    import psycopg

    engine = _pg_engine()
    reader = HotReader(engine)
    (pid,) = reader.rows("SELECT pg_backend_pid()", {})[0]
    [kept] = reader._idle

    def hung_up(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection socket closed")

    kept.execute = hung_up
    assert read_member(reader, 7).name == "Ada"
    (other,) = reader.rows("SELECT pg_backend_pid()", {})[0]
    assert other != pid and reader.opened == 1
    reader.close()
    engine.dispose()


def test_a_cancelled_postgres_read_is_not_retried_and_its_connections_stay() -> None:
    """Only a connection the server dropped is worth a second try: a statement it cancelled (a timeout)
    fails once, and the idle connections are not taken for dead."""
    engine = _pg_engine()
    reader = HotReader(engine)
    taken = [reader._take() for _ in range(3)]
    for conn, _, generation in taken:
        reader._give_back(conn, generation)
    before = {reader.rows("SELECT pg_backend_pid()", {})[0][0] for _ in range(3)}
    with pytest.raises(UnavailableError, match="canceling statement due to user request"):
        reader.rows("SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(1)", {})
    assert reader.opened == 3
    assert reader.rows("SELECT 5 % 3, '1'::int", {}) == [(2, 1)]  # a literal % and a cast pass through
    assert reader.rows("SELECT pg_backend_pid()", {})[0][0] in before
    reader.close()
    engine.dispose()


def test_a_connection_reading_while_the_reader_closes_is_closed_when_given_back(database_url: str) -> None:
    engine = _engine(database_url)
    reader = HotReader(engine)
    conn, _, generation = reader._take()
    reader.close()
    assert reader.opened == 1  # still reading
    reader._give_back(conn, generation)
    assert reader.opened == 0
    assert read_member(reader, 7).name == "Ada" and reader.opened == 1  # a new one afterwards
    reader.close()
    engine.dispose()


def test_a_postgres_password_with_a_space_and_url_options_reach_the_server() -> None:
    """The reader reads the URL as the engine does (escapes, ``options``)."""
    engine = _pg_engine()
    with engine.begin() as conn:
        conn.execute(text("DROP ROLE IF EXISTS reader_test_role"))
        conn.execute(text("CREATE ROLE reader_test_role LOGIN PASSWORD 'a b'"))
        conn.execute(text("GRANT USAGE ON SCHEMA public TO reader_test_role"))
        conn.execute(text("GRANT SELECT ON members TO reader_test_role"))
    try:
        url = engine.url.set(username="reader_test_role", password="a b", query={"options": "-cwork_mem=8MB"})
        other = connect(url.render_as_string(hide_password=False))
        reader = HotReader(other)
        assert read_member(reader, 7).name == "Ada"
        assert reader.rows("SELECT current_user, current_setting('work_mem')", {}) == [
            ("reader_test_role", "8MB")
        ]
        reader.close()
        other.dispose()
    finally:
        with engine.begin() as conn:
            conn.execute(text("REVOKE ALL ON members FROM reader_test_role"))
            conn.execute(text("REVOKE ALL ON SCHEMA public FROM reader_test_role"))
            conn.execute(text("DROP ROLE reader_test_role"))
        engine.dispose()


def _socket_options(conn: Any) -> tuple[int, int, int]:
    """(keepalive on, seconds idle before probes, ms of unacknowledged data before giving up) of a
    psycopg connection's socket, as the kernel holds them."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )


def test_postgres_sockets_give_up_on_a_host_that_stops_answering_unless_the_url_says_otherwise() -> None:
    """Every connection, the pool's and the reader's, has the kernel drop it after 10 s of
    unacknowledged data (and probe it after 30 s idle), not after ~15 minutes of retransmissions;
    options in the URL win, ``connect_timeout`` included (the reader once passed it twice)."""
    engine = _pg_engine()
    tuned = connect(engine.url.update_query_dict({"tcp_user_timeout": "2500", "connect_timeout": "5"}))
    for db, give_up_ms in ((engine, 10_000), (tuned, 2_500)):
        reader = HotReader(db)
        assert read_member(reader, 7).name == "Ada"
        with db.connect() as conn:
            assert _socket_options(conn.connection.dbapi_connection) == (1, 30, give_up_ms)
        assert _socket_options(reader._idle[-1]) == (1, 30, give_up_ms)
        reader.close()
        db.dispose()


def test_an_unreachable_postgres_is_unavailable_naming_the_server() -> None:
    engine = connect("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    reader = HotReader(engine)
    with pytest.raises(
        UnavailableError, match=r"the database at postgresql\+psycopg://postgres@127.0.0.1:1/"
    ):
        read_member(reader, 7)
    assert reader.opened == 0
    engine.dispose()


def test_a_forked_child_reads_on_its_own_and_leaves_the_parents_connection_alone(database_url: str) -> None:
    """Gunicorn forks its workers: a child must not use, nor close, what its parent opened."""
    import os

    engine = _engine(database_url)
    reader = HotReader(engine)
    session = "SELECT pg_backend_pid()" if database_url.startswith("postgresql") else "SELECT 1"
    before = reader.rows(session, {})
    pid = os.fork()
    if pid == 0:  # the child: its own connection, closed by its own close()
        ok = read_member(reader, 7).name == "Ada" and reader.opened == 1
        reader.close()
        os._exit(0 if ok and reader.opened == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert reader.rows(session, {}) == before and reader.opened == 1  # the parent's session goes on
    reader.close()
    engine.dispose()
