"""Small fixed reads made at every request, on driver connections of their own, not the pool's.

A cached home page is answered after one read (the member's region and
``revision``), a steering decision after another (the change counters its
snapshot was built from).  Through the SQLAlchemy pool such a read costs a
checkout, a connection wrapper, a statement to compile or look up and a
rollback at check-in — measured here at 36 µs of a 45 µs member read in a
loop on SQLite, more inside a Gunicorn worker, and on PostgreSQL also a
ping at checkout (``pool_pre_ping``): 615 µs against 111 µs for the bare
statement on a local server.

So these reads run on driver connections of their own: SQLite connections
to the file (a file handle, cheap to keep; ``query_only``), or psycopg
connections, in autocommit (no read transaction stays open between
requests), without server-side prepared statements or session settings (so
a transaction-pooling PgBouncer may stand in between).
A read takes the idle one used last and gives it back, so a process keeps as
many as its reads ever ran at once (one more server connection per serving
thread than the pool's, on PostgreSQL).  A PostgreSQL connection the server
dropped (a restart) is opened again once and the read retried, as the
pool's ping would have done.

On an in-memory SQLite, which only the pool's connection can see, the read
goes through a pooled connection as every other read does.

Statements are plain SQL with ``:name`` parameters, which SQLite's driver and
SQLAlchemy's :func:`~sqlalchemy.text` understand (and which become psycopg's
``%(name)s``; a ``:word`` inside a quoted string or identifier stays as it is).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, TextClause, text
from sqlalchemy.exc import DBAPIError

from openflix.store.db import postgres_socket, translating

__all__ = ["HotReader"]


@lru_cache(maxsize=64)
def _text(sql: str) -> TextClause:
    return text(sql)


_QUOTED_OR_PARAMETER = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")|(?<![:\w]):(\w+)""")
"""A quoted string or identifier (group 1, kept as it is), or a ``:name`` parameter (group 2)."""


@lru_cache(maxsize=64)
def _pyformat(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s``; ``::type`` casts, and ``:word`` inside a quoted
    string or identifier, left alone (``%`` doubled everywhere, as psycopg reads it everywhere)."""
    return _QUOTED_OR_PARAMETER.sub(lambda m: m.group(1) or f"%({m.group(2)})s", sql.replace("%", "%%"))


class HotReader:
    """Runs small read-only statements on every request.

    Thread-safe: a read takes the idle connection of this process used last
    (or opens one) and gives it back once its rows are read, so a process
    keeps as many as reads ever ran at once — whether its server keeps its
    threads (Gunicorn's gthread) or starts one per request.  A forked child
    opens its own and leaves its parent's alone.  :meth:`close` closes the
    idle ones, and those reading when it is called as they are given back.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        plain_file = database not in (None, "", ":memory:") and "uri" not in engine.url.query
        self._path = database if plain_file else None
        self._conninfo: dict[str, Any] | None = None
        if engine.dialect.name == "postgresql":  # the engine's own reading of its URL (escapes, options)
            _, arguments = engine.dialect.create_connect_args(engine.url)
            self._conninfo = {k: v for k, v in arguments.items() if k != "context"}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: list[Any] = []
        self._opened = 0
        self._generation = 0
        """Bumped by :meth:`close`: a connection taken before is closed when it is given back."""

    @property
    def direct(self) -> bool:
        """Whether reads bypass the pool (a SQLite file, or PostgreSQL)."""
        return self._path is not None or self._conninfo is not None

    @property
    def opened(self) -> int:
        """Connections this process has open for its reads, idle or reading."""
        with self._lock:
            return self._opened if self._pid == os.getpid() else 0

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of ``sql`` (``:name`` parameters from ``params``); an unreachable database is
        :class:`~openflix.errors.UnavailableError`, as everywhere."""
        with translating(self.engine):
            if not self.direct:
                with self.engine.connect() as conn:
                    return [tuple(r) for r in conn.execute(_text(sql), dict(params))]
            return self._direct_rows(sql, params)

    def _direct_rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        errors: type[Exception]
        if self._conninfo is not None:
            import psycopg

            statement, errors = _pyformat(sql), psycopg.Error
        else:
            statement, errors = sql, sqlite3.Error
        arguments = dict(params)
        for attempt in (1, 2):
            conn, kept, generation = self._take_or_raise(sql, arguments, errors)
            try:
                rows: list[tuple[Any, ...]] = conn.execute(statement, arguments).fetchall()
            except BaseException as exc:
                # SQLite: start afresh; PostgreSQL: when the connection is gone
                lost = self._path is not None or conn.closed or conn.broken or _socket_lost(exc)
                if lost or not isinstance(exc, errors):
                    self._discard(conn)
                else:  # e.g. a cancelled statement: the connection still serves
                    self._give_back(conn, generation)
                if not isinstance(exc, errors):
                    raise
                if lost and kept and self._conninfo is not None and attempt == 1:
                    continue  # a kept connection the server dropped (a restart): once more on a new one
                raise DBAPIError.instance(sql, arguments, exc, errors) from exc
            self._give_back(conn, generation)
            return rows
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _take_or_raise(
        self, sql: str, arguments: dict[str, Any], errors: type[Exception]
    ) -> tuple[Any, bool, int]:
        try:
            return self._take()
        except errors as exc:  # cannot connect: the caller's translating() names the server
            raise DBAPIError.instance(sql, arguments, exc, errors) from exc

    def _take(self) -> tuple[Any, bool, int]:
        """An idle connection (kept: True) or a new one, and the generation it belongs to."""
        with self._lock:
            self._in_this_process()
            generation = self._generation
            if self._idle:
                return self._idle.pop(), True, generation
            self._opened += 1
        try:
            return self._connect(), False, generation
        except BaseException:
            with self._lock:
                self._opened -= 1
            raise

    def _in_this_process(self) -> None:
        """Under the lock: in a forked child, start with no connections (the parent's stay the
        parent's: closing a PostgreSQL one here would end the parent's session)."""
        if self._pid != os.getpid():
            self._pid, self._idle, self._opened = os.getpid(), [], 0

    def _connect(self) -> Any:
        conn: Any
        if self._conninfo is not None:
            import psycopg

            # The engine's socket options (what the URL sets wins); autocommit: no transaction stays
            # open between reads.  No server-side prepared statements and no session settings, which
            # a transaction-pooling PgBouncer would mix up between clients.
            options = {**postgres_socket(self._conninfo), **self._conninfo}
            conn = psycopg.connect(autocommit=True, prepare_threshold=None, **options)
        else:
            assert self._path is not None
            # the same driver options as the engine's own connections (timeout; any thread may use it)
            conn = sqlite3.connect(self._path, timeout=10, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA query_only=ON")
        return conn

    def _give_back(self, conn: Any, generation: int) -> None:
        with self._lock:
            if generation == self._generation and self._pid == os.getpid():
                self._idle.append(conn)
                return
        self._discard(conn)  # closed while it read

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._opened -= 1
        with contextlib.suppress(Exception):  # already broken: nothing left to release
            conn.close()

    def close(self) -> None:
        """Close this process's idle connections, and the others as they are given back (a read
        afterwards opens a new one)."""
        with self._lock:
            self._in_this_process()
            idle, self._idle = self._idle, []
            self._generation += 1
        for conn in idle:
            self._discard(conn)


def _socket_lost(exc: BaseException) -> bool:
    """A PostgreSQL failure the client saw on its socket, not one the server reported (no SQLSTATE):
    psycopg says "connection socket closed" when the socket hangs up before the server's goodbye is
    read, without marking the connection broken."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
