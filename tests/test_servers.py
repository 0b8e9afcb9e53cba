"""The throwaway servers of tests/servers.py start, survive restarts and leave the machine's servers alone."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    ServerError,
    ThrowawayPostgres,
    ThrowawayRedis,
    free_port,
    postgres_missing,
    redis_server_missing,
)

MACHINE_REDIS = 6379
MACHINE_POSTGRES = 5432


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def machine_servers_untouched() -> Iterator[None]:
    """Whatever of the machine's own Redis/PostgreSQL listened before this module still listens after it."""
    before = {port: _listening(port) for port in (MACHINE_REDIS, MACHINE_POSTGRES)}
    yield
    for port, was_up in before.items():
        if was_up:
            assert _listening(port), f"the machine's server on 127.0.0.1:{port} went away"


def test_free_port_is_bindable_and_not_a_machine_port() -> None:
    port = free_port()
    assert port not in (MACHINE_REDIS, MACHINE_POSTGRES)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_restart() -> None:
    reason = redis_server_missing()
    if reason:
        pytest.skip(reason)
    import redis

    with ThrowawayRedis() as server:
        assert server.port != MACHINE_REDIS
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        try:
            client.set("k", "v")
            assert client.get("k") == b"v"

            server.stop()
            assert not server.running
            with pytest.raises(redis.ConnectionError):
                client.ping()

            server.start()
            assert client.ping()
            assert client.get("k") is None  # persistence is off: a restart loses the data

            client.set("k2", "v2")
            server.kill()
            server.restart()
            assert client.ping()
            assert client.get("k2") is None
        finally:
            client.close()
        tmpdir = server.tmpdir
        assert tmpdir is not None and tmpdir.exists()
    assert not tmpdir.exists()
    assert not server.running


def test_postgres_restart_keeps_committed_rows() -> None:
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    import psycopg

    with ThrowawayPostgres() as server:
        assert server.port != MACHINE_POSTGRES
        assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO t VALUES (1, 'one')")

        server.restart()
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            assert conn.execute("SELECT name FROM t WHERE id = 1").fetchone() == ("one",)
            conn.execute("INSERT INTO t VALUES (2, 'two')")

        # A crash-like stop: open connections break, committed rows survive (recovery on start).
        conn = psycopg.connect(server.conninfo, autocommit=True)
        try:
            server.stop("immediate")
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        finally:
            conn.close()
        server.start()

        # SIGKILL of postmaster and backends mid-transaction: the uncommitted row goes, the rest stays.
        conn = psycopg.connect(server.conninfo)
        try:
            conn.execute("INSERT INTO t VALUES (3, 'uncommitted')")
            server.kill()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        finally:
            conn.close()
        server.start()
        with psycopg.connect(server.conninfo) as conn:
            assert conn.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,)]
        tmpdir = server.tmpdir
        assert tmpdir is not None and tmpdir.exists()
    assert not tmpdir.exists()


def test_postgres_cleanup_after_failed_start() -> None:
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    before = set(Path(tempfile.gettempdir()).glob("openflix-pg-*"))
    server = ThrowawayPostgres()
    # Another listener holds the port, so the postmaster cannot bind and pg_ctl start fails.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server.port = blocker.getsockname()[1]
        server.start_timeout = 5
        with pytest.raises(ServerError, match="pg_ctl start"), server:
            pass
    assert server.tmpdir is None
    assert set(Path(tempfile.gettempdir()).glob("openflix-pg-*")) <= before
