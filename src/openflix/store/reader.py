"""Small fixed reads made at every request, without a pool checkout on SQLite.

A cached home page is answered after one read (the member's region and
``revision``), a steering decision after another (the change counters its
snapshot was built from).  Through the SQLAlchemy pool such a read costs a
checkout, a connection wrapper, a statement to compile or look up and a
rollback at check-in — measured here at 36 µs of a 45 µs member read in a
loop, and more inside a Gunicorn worker.  On a SQLite file each thread
instead keeps one driver connection of its own for these statements (a
SQLite connection is a file handle, cheap to keep), reads in autocommit and
steps each statement to its end, so no read transaction stays open between
requests.

On any other database (and on an in-memory SQLite, which only the pool's
connection can see) the read goes through a pooled connection as every other
read does; PostgreSQL's pool already keeps its connections.

Statements are plain SQL with ``:name`` parameters, which both SQLite's
driver and SQLAlchemy's :func:`~sqlalchemy.text` understand.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, TextClause, text
from sqlalchemy.exc import DBAPIError

from openflix.store.db import translating

__all__ = ["HotReader"]


@lru_cache(maxsize=64)
def _text(sql: str) -> TextClause:
    return text(sql)


class HotReader:
    """Runs small read-only statements on every request.

    Thread-safe: each thread (of each process: a forked child opens its own)
    has its own connection.  :meth:`close` closes all of them.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        plain_file = database not in (None, "", ":memory:") and "uri" not in engine.url.query
        self._path = database if plain_file else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []

    @property
    def direct(self) -> bool:
        """Whether reads bypass the pool (a SQLite file)."""
        return self._path is not None

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of ``sql`` (``:name`` parameters from ``params``); an unreachable database is
        :class:`~openflix.errors.UnavailableError`, as everywhere."""
        with translating(self.engine):
            if self._path is None:
                with self.engine.connect() as conn:
                    return [tuple(r) for r in conn.execute(_text(sql), dict(params))]
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._drop()
                raise DBAPIError.instance(sql, dict(params), exc, sqlite3.Error) from exc

    def _connection(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        assert self._path is not None
        # the same driver options as the engine's own connections (timeout; any thread may close it)
        conn = sqlite3.connect(self._path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        self._local.held = (os.getpid(), conn)
        with self._lock:
            self._open.append(conn)
        return conn

    def _drop(self) -> None:
        """Forget this thread's connection after an error: the next read opens a new one."""
        held: Any = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._lock:
                if held[1] in self._open:
                    self._open.remove(held[1])
            held[1].close()

    def close(self) -> None:
        """Close every thread's connection (a thread reading afterwards opens a new one)."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
