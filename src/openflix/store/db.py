"""Connecting to the database and migrating it (SQLite by default, PostgreSQL in production).

:func:`connect` returns an :class:`~sqlalchemy.engine.Engine`; :func:`upgrade`
brings its schema to the newest Alembic revision; :func:`translating` turns a
lost connection into :class:`~openflix.errors.UnavailableError` (503) rather
than a traceback.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError

from openflix.errors import ConfigError, UnavailableError

__all__ = [
    "POSTGRES_SOCKET",
    "connect",
    "current_revision",
    "head_revision",
    "missing_table_or_column",
    "postgres_socket",
    "schema_problem",
    "translating",
    "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")

POSTGRES_SOCKET: dict[str, int] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
"""libpq options of every PostgreSQL connection, unless the URL's query sets them: give up
connecting after 3 s; when the server's host stops answering (it died, the link is cut), a read
fails after 10 s of unacknowledged data and an idle connection is dropped after 30 s of silence
and a probe unanswered for 10 s (``tcp_user_timeout`` bounds the probes too, see tcp(7)), instead
of after the kernel's retransmissions (about 15 minutes).  A slow query holds no data in flight,
so it is not cut short; a server process that hangs while its host's kernel still acknowledges
is not caught here (``statement_timeout`` on the server is for that)."""


def connect(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///file.db`` or ``postgresql+psycopg://…``).

    PostgreSQL connections are checked before use (``pool_pre_ping``) so a
    restarted server is reconnected to transparently; SQLite runs in WAL
    mode with foreign keys on and waits up to 10 s for a lock.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"OPENFLIX_DATABASE_URL={url!r} is not a database URL; expected e.g. "
            "'sqlite:///openflix.db' or 'postgresql+psycopg://user@host/db'"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"OPENFLIX_DATABASE_URL: {parsed.get_backend_name()!r} is not supported; use sqlite or postgresql"
        )
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 10, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("connect_args", postgres_socket(parsed.query))
    return create_engine(parsed, **kwargs)


def postgres_socket(query: Mapping[str, Any]) -> dict[str, int]:
    """:data:`POSTGRES_SOCKET` without the options a URL's ``query`` sets itself (the URL wins)."""
    return {k: v for k, v in POSTGRES_SOCKET.items() if k not in query}


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (creating every table on a new database)."""
    from alembic import command

    with translating(engine):
        command.upgrade(_alembic_config(engine), revision)


@functools.cache
def head_revision() -> str:
    """The newest migration's revision id (read once per process: the scripts ship with the code)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with translating(engine), engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


def schema_problem(engine: Engine) -> str | None:
    """What keeps this version from using the database's schema: ``None`` at this release's newest
    revision, and at one this release does not know (a newer release migrated it during a rolling
    deploy: its migrations only add, and this release's workers keep serving); else that it was never
    migrated or an older release's revision, and the command to run."""
    current, head = current_revision(engine), head_revision()
    if current == head or (current is not None and current not in _known_revisions()):
        return None
    at = f"at revision {current}" if current else "not migrated"
    return f"the database schema is {at}; this version needs revision {head}: run `openflix db upgrade`"


@functools.cache
def _known_revisions() -> frozenset[str]:
    """Every revision this release's migrations know."""
    from alembic.script import ScriptDirectory

    return frozenset(s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


@contextmanager
def translating(engine: Engine) -> Iterator[None]:
    """Turn "cannot reach the database" into :class:`UnavailableError` naming the server, and a table
    or column missing from a schema behind this version into one naming the command to run."""
    try:
        yield
    except DBAPIError as exc:
        if missing_table_or_column(exc) and (problem := _schema_problem_after(engine)) is not None:
            raise UnavailableError(problem) from exc
        unreadable = "file is not a database" in str(exc.orig)  # SQLite pointed at another kind of file
        if not (isinstance(exc, OperationalError | SAInterfaceError) or unreadable) or (
            exc.connection_invalidated is False and _is_sqlite_data(exc)
        ):
            raise
        where = engine.url.render_as_string(hide_password=True)
        raise UnavailableError(f"the database at {where} cannot be reached: {_first_line(exc)}") from exc
    except Exception as exc:  # a reader's wrapper around the driver's error (pandas' read_sql)
        cause = exc.__cause__
        if (
            isinstance(cause, DBAPIError)
            and missing_table_or_column(cause)
            and (problem := _schema_problem_after(engine)) is not None
        ):
            raise UnavailableError(problem) from exc
        raise


MISSING = ("no such table", "no such column", "does not exist")
"""How SQLite and PostgreSQL say a table or column is not there (PostgreSQL: ``relation "x" does not
exist``, ``column "y" does not exist``)."""


def missing_table_or_column(exc: BaseException) -> bool:
    """A database error that a schema behind the code explains (not an outage or a constraint)."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError) or exc.connection_invalidated:
        return False
    message = str(exc.orig or exc)
    return any(m in message for m in MISSING)


def _schema_problem_after(engine: Engine) -> str | None:
    """After a database error: why this version cannot use the schema, if that is the cause."""
    try:
        return schema_problem(engine)
    except Exception:  # the database is gone too: the original error is the one to report
        return None


def _is_sqlite_data(exc: DBAPIError) -> bool:
    return "no such table" in str(exc.orig) if exc.orig is not None else False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
