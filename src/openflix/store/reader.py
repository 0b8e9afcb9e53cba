"""The member read of every home request, without a pool checkout on SQLite.

A cached home page is answered after one read: the member's region and
``revision`` (see :mod:`openflix.services.home`).  Through the SQLAlchemy
pool that read costs a checkout, a connection wrapper and a rollback at
check-in — measured here at 36 µs of its 45 µs in a loop, and more inside a
Gunicorn worker.  On a SQLite file each thread instead keeps one driver
connection of its own for this one statement (a SQLite connection is a file
handle, cheap to keep), reads in autocommit and steps the statement to its
end, so no read transaction stays open between requests.

On any other database (and on an in-memory SQLite, which only the pool's
connection can see) the read goes through a pooled connection as every other
read does; PostgreSQL's pool already keeps its connections.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from openflix.errors import NotFoundError
from openflix.store.catalog import MemberRow, get_member
from openflix.store.db import translating

__all__ = ["MemberReader"]

_SQL = "SELECT id, name, region, country, revision FROM members WHERE id = ?"


class MemberReader:
    """Reads one member's profile row, as :func:`~openflix.store.catalog.get_member` does.

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

    def get(self, member_id: int) -> MemberRow:
        """``member_id``'s profile; :class:`NotFoundError` when there is none, as ``get_member``."""
        if self._path is None:
            with translating(self.engine), self.engine.connect() as conn:
                return get_member(conn, member_id)
        params = (member_id,)
        with translating(self.engine):
            try:
                rows = self._connection().execute(_SQL, params).fetchall()
            except sqlite3.Error as exc:
                self._drop()
                raise DBAPIError.instance(_SQL, params, exc, sqlite3.Error) from exc
        if not rows:
            raise NotFoundError(f"member {member_id} does not exist")
        m = rows[0]
        return MemberRow(int(m[0]), m[1], m[2], m[3], int(m[4]))

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
