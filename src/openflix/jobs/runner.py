"""Submitting jobs and reading their status: RQ on Redis, or a thread in this process.

``OPENFLIX_REDIS_URL`` set: jobs go to the ``openflix`` RQ queue and run on
``openflix worker`` processes, retried with backoff when they fail or their
worker dies.  Unset (the embedded default): they run on one background
thread of the submitting process, with the same retries.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from openflix.errors import DataError, NotFoundError, UnavailableError
from openflix.jobs.tasks import KINDS, JobStatus, check_params, run_job
from openflix.store.db import translating
from openflix.store.schema import JobRecord

if TYPE_CHECKING:
    from openflix.services.platform import Platform

__all__ = [
    "QUEUE",
    "RETRY_INTERVALS",
    "TIMEOUTS",
    "InProcessRunner",
    "JobInfo",
    "JobRunner",
    "RQRunner",
    "open_runner",
]

QUEUE = "openflix"
"""Name of the RQ queue."""
RETRY_INTERVALS = (5, 30, 120)
"""Seconds to wait before each retry of a failed job (len = number of retries)."""
TIMEOUTS = {"import": 3600, "train": 3600, "retrain": 3600, "evaluate": 3600}
"""Seconds a job may run before it is stopped and counted as failed."""


@dataclass(frozen=True)
class JobInfo:
    """A job as ``GET /jobs/{id}`` shows it (times in Unix seconds)."""

    id: str
    kind: str
    params: dict[str, Any]
    status: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: int
    started_at: int | None
    ended_at: int | None


class JobRunner(ABC):
    """Where jobs run."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def submit(
        self, kind: str, params: dict[str, Any] | None = None, *, job_id: str | None = None
    ) -> JobInfo:
        """Record a job and start it (or queue it).

        With ``job_id`` given and already recorded, nothing new is started and
        that job is returned: several processes may submit the same scheduled
        job and it runs once.
        """
        if kind not in KINDS:
            raise DataError(f"job kind must be one of {', '.join(sorted(KINDS))} (got {kind!r})")
        check_params(self.platform, kind, params or {})
        job_id = job_id or uuid.uuid4().hex
        engine = self.platform.engine
        try:
            with translating(engine), engine.begin() as conn:
                if conn.scalar(select(JobRecord.id).where(JobRecord.id == job_id)) is not None:
                    return self.get(job_id)
                conn.execute(
                    insert(JobRecord).values(
                        id=job_id,
                        kind=kind,
                        params=params or {},
                        status=JobStatus.QUEUED.value,
                        attempts=0,
                        created_at=int(time.time()),
                    )
                )
        except IntegrityError:  # submitted by another process at the same moment
            return self.get(job_id)
        try:
            self._start(job_id, kind)
        except Exception:
            # Not queued (Redis down, say): take the record back, or it would stay "queued" for ever and
            # a new submission of the same id (the nightly retrain) would find it and start nothing.
            with contextlib.suppress(Exception), engine.begin() as conn:
                queued = (JobRecord.status == JobStatus.QUEUED.value) & (JobRecord.attempts == 0)
                conn.execute(delete(JobRecord).where(JobRecord.id == job_id, queued))
            raise
        return self.get(job_id)

    @abstractmethod
    def _start(self, job_id: str, kind: str) -> None: ...

    def get(self, job_id: str) -> JobInfo:
        """A job's status; :class:`NotFoundError` for an unknown id."""
        engine = self.platform.engine
        with translating(engine), engine.connect() as conn:
            row = conn.execute(select(JobRecord.__table__).where(JobRecord.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return JobInfo(
            row.id,
            row.kind,
            dict(row.params),
            row.status,
            row.attempts,
            row.result,
            row.error,
            row.created_at,
            row.started_at,
            row.ended_at,
        )


class InProcessRunner(JobRunner):
    """Runs jobs one at a time on a background thread of this process (no Redis needed)."""

    _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openflix-job")
    retry_intervals: tuple[int, ...] = RETRY_INTERVALS

    def _start(self, job_id: str, kind: str) -> None:
        def work() -> None:
            for attempt in range(len(RETRY_INTERVALS) + 1):
                try:
                    run_job(job_id, self.platform)
                    return
                except Exception:
                    if attempt < len(RETRY_INTERVALS):
                        time.sleep(RETRY_INTERVALS[attempt])

        self._pool.submit(work)

    def wait(self, job_id: str, timeout: float = 600.0) -> JobInfo:
        """Block until the job finished or failed for good (tests and the CLI use it)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.status == JobStatus.FINISHED.value:
                return info
            if info.status == JobStatus.FAILED.value and (
                info.attempts > len(self.retry_intervals) or info.result is not None
            ):
                return info
            if time.monotonic() > deadline:
                return info
            time.sleep(0.05)


class RQRunner(JobRunner):
    """Queues jobs on Redis for ``openflix worker`` processes."""

    def __init__(self, platform: Platform, redis_url: str) -> None:
        super().__init__(platform)
        from redis import Redis

        self.redis = Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10)

    def queue(self) -> Any:
        from rq import Queue

        return Queue(QUEUE, connection=self.redis)

    def _start(self, job_id: str, kind: str) -> None:
        from redis.exceptions import RedisError
        from rq import Retry

        try:
            self.queue().enqueue(
                run_job,
                job_id,
                job_id=job_id,
                retry=Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)),
                job_timeout=TIMEOUTS[kind],
                result_ttl=86_400,
                failure_ttl=7 * 86_400,
            )
        except RedisError as exc:
            raise UnavailableError(f"Redis cannot be reached to queue job {job_id}: {exc}") from exc


def open_runner(platform: Platform) -> JobRunner:
    """RQ when ``OPENFLIX_REDIS_URL`` is set, in-process otherwise."""
    url = platform.settings.redis_url
    return RQRunner(platform, url) if url else InProcessRunner(platform)
