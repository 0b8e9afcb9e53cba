"""Shared fixtures: real datasets (skipped with a reason where absent) and small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openflix.recs.data import Interactions
from openflix.settings import bundled_data

ML100K = Path(os.environ.get("OPENFLIX_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k"))


@pytest.fixture(scope="session")
def ml100k_path() -> Path:
    """The MovieLens 100K folder (never bundled: its licence forbids redistribution)."""
    if not (ML100K / "u.data").exists():
        pytest.skip(
            f"MovieLens 100K not found at {ML100K}; set OPENFLIX_ML100K or run 'openflix data fetch ml-100k'"
        )
    return ML100K


@pytest.fixture(scope="session")
def latest_small_path() -> Path:
    return bundled_data()


@pytest.fixture(scope="session")
def latest_small(latest_small_path: Path) -> Interactions:
    from openflix.recs.datasets import load

    return load(latest_small_path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def make_interactions(
    n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0
) -> Interactions:
    """Members in two taste groups (even/odd titles), with times and 1-5 ratings."""
    r = np.random.default_rng(seed)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        chosen = r.choice(pool, size=min(per_user, len(pool)), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
        ratings += r.integers(1, 6, len(chosen)).tolist()
        times += (1_000_000 + u * 10 + np.arange(len(chosen)) * 3600).tolist()
    return Interactions.from_ids(
        np.array(users) + 100,
        np.array(items) + 1000,
        np.array(ratings, float),
        np.array(times),
        item_info={i + 1000: (f"Title {i}", "Drama" if i % 2 else "Comedy") for i in range(n_items)},
        source="synthetic",
    )


def write_ratings_csv(data: Interactions, path: Path) -> Path:
    """``data`` as a MovieLens-latest ``ratings.csv`` (userId, movieId, rating, timestamp)."""
    import pandas as pd

    pd.DataFrame(
        {
            "userId": data.user_ids[data.users],
            "movieId": data.item_ids[data.items],
            "rating": data.ratings,
            "timestamp": data.timestamps,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def small() -> Interactions:
    return make_interactions()


# ---------------------------------------------------------------- platform: real PostgreSQL and Redis
PG_URL = os.environ.get("OPENFLIX_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPENFLIX_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
REQUIRE_SERVICES = os.environ.get("OPENFLIX_REQUIRE_SERVICES") == "1"
"""Set by .ci/run: a missing PostgreSQL, Redis or chromium fails the tests instead of skipping them."""


def service_missing(what: str, url: str, exc: BaseException) -> None:
    message = f"{what} at {url} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; OPENFLIX_REQUIRE_SERVICES=1 makes this a failure", pytrace=False)
    pytest.skip(message + "; start it or set OPENFLIX_TEST_DATABASE_URL / OPENFLIX_TEST_REDIS_URL")


RUN_LOCK = 0x6F70656E666C6978
"""PostgreSQL advisory lock a test run holds on its test database for as long as it runs."""
_run_lock: list[Any] = []
_no_postgres: list[bool] = []
"""Set when ``fresh_redis`` found PostgreSQL unreachable: it does not try for the lock again."""
_HOLDER = f"""
SELECT a.pid, a.client_addr, a.backend_start, a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = {RUN_LOCK >> 32} AND l.objid = {RUN_LOCK & 0xFFFFFFFF}
"""


def _hold_the_test_database(url: str) -> None:
    """Hold :data:`RUN_LOCK` for the rest of the run, or fail: two runs would empty each other's tables.

    The connection sends TCP keepalives, so a run whose machine vanished lets go within about a
    minute and a half.  Raises ``sqlalchemy.exc.OperationalError`` when PostgreSQL is not reachable.
    """
    import sqlalchemy as sa

    if _run_lock:
        return
    options = {
        "connect_timeout": 3,
        "application_name": f"openflix tests (pid {os.getpid()})",
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 6,
    }
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args=options)
    conn = engine.connect()
    if not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({RUN_LOCK})").scalar():
        holder = conn.exec_driver_sql(_HOLDER).first()
        conn.close()
        who = (
            f"{holder.application_name or 'a session'} (server pid {holder.pid}, from "
            f"{holder.client_addr or 'the local socket'}, since {holder.backend_start:%Y-%m-%d %H:%M:%S})"
            if holder is not None
            else "another session"
        )
        pytest.fail(
            f"another test run is using the PostgreSQL test database {url} (and Redis {REDIS_URL}): {who}; "
            "wait for it, or give this run its own: OPENFLIX_TEST_DATABASE_URL, OPENFLIX_TEST_REDIS_URL",
            pytrace=False,
        )
    conn.commit()
    _run_lock.append(conn)


def fresh_postgres(url: str = PG_URL) -> str:
    """Empty the PostgreSQL test database (schema public) and return its URL."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        if url == PG_URL:
            _hold_the_test_database(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    except sa.exc.OperationalError as exc:
        service_missing("PostgreSQL", url, exc)
    return url


def fresh_redis(url: str = REDIS_URL) -> str:
    """Empty the Redis test database and return its URL."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    if url == REDIS_URL and not _run_lock and not _no_postgres:  # the run lock lives in PostgreSQL
        import sqlalchemy as sa

        try:
            _hold_the_test_database(PG_URL)
        except sa.exc.OperationalError:
            _no_postgres.append(True)
    try:
        client = Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except RedisConnectionError as exc:
        service_missing("Redis", url, exc)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'openflix.db'}"
    return fresh_postgres()


@pytest.fixture(scope="session")
def store_data(latest_small: Interactions) -> Interactions:
    """A slice of latest-small: its first 80 members on its 400 most rated titles (fast to train)."""
    counts = np.bincount(latest_small.items, minlength=latest_small.n_items)
    top = np.argsort(-counts, kind="stable")[:400]
    keep = np.isin(latest_small.items, top) & (latest_small.users < 80)
    return latest_small.subset(np.flatnonzero(keep)).compact()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Let go of the test database (:data:`RUN_LOCK`)."""
    while _run_lock:
        _run_lock.pop().close()
