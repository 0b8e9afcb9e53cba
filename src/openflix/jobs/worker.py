"""``openflix worker``: an RQ worker on the ``openflix`` queue, plus the nightly clock.

Before it starts taking jobs (and again at each of RQ's maintenance rounds),
the worker looks for jobs whose worker died (SIGKILL, lost machine) and puts
them back on the queue when they have retries left — or marks them failed
when they have none — so a killed training job runs again without waiting
for RQ's own expiry of the job (90 s, then up to 10 minutes until its
maintenance notices).

A worker counts as dead when its Redis record is gone or says it died, when
it sends no heartbeat for :data:`STALE_AFTER` seconds (RQ keeps the record of
a killed worker for a while, so "is it listed" is not enough), or — at once —
when it ran on this machine (same boot, same PID namespace) and its process
no longer exists.  The work horse, the forked process that runs the job, is
killed by the kernel when its worker dies, so a job never goes on running
unsupervised while it runs again elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry
from rq.utils import as_text, utcparse

from openflix.errors import ConfigError, UnavailableError
from openflix.jobs.runner import QUEUE
from openflix.jobs.schedule import start_clock

if TYPE_CHECKING:
    from redis import Redis

    from openflix.services.platform import Platform

__all__ = [
    "JOB_MONITORING_INTERVAL",
    "STALE_AFTER",
    "OpenflixWorker",
    "host_identity",
    "pid_alive",
    "requeue_abandoned",
    "run_worker",
    "worker_alive",
]

log = logging.getLogger("openflix.jobs")

JOB_MONITORING_INTERVAL = 10
"""Seconds between the heartbeats of a worker running a job (RQ's default is 30)."""
STALE_AFTER = 60.0
"""A worker holding a started job without a heartbeat for this long is dead.

Twice RQ's default heartbeat interval (so plain ``rq worker`` processes are
not declared dead early), and less than the 90 s after which RQ itself
expires the job."""
HOST_FIELD = "openflix_host"
"""Field of a worker's Redis hash naming its machine and PID namespace (see :func:`host_identity`)."""


def host_identity() -> str | None:
    """This machine's boot and this process's PID namespace; ``None`` where /proc cannot tell.

    Two processes with the same identity see the same PIDs, so one can ask
    whether the other's PID still exists; the hostname alone cannot promise
    that (containers may share one).
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie.

    A killed process is re-parented to PID 1, which may reap it late (or never,
    in a container without an init), so ``os.kill(pid, 0)`` alone would keep
    reporting it alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self").exists()  # vanished meanwhile (or no /proc: trust os.kill)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def worker_alive(redis: Redis, name: str, *, current: str | None = None) -> bool:
    """Whether the RQ worker ``name`` is still running (``current``: the caller's own worker name)."""
    if name == current:
        return True
    raw = redis.hgetall(Worker.redis_worker_namespace_prefix + name)
    data = {as_text(k): as_text(v) for k, v in raw.items()}
    if not data.get("last_heartbeat") or "death" in data:
        return False
    if time.time() - utcparse(data["last_heartbeat"]).timestamp() > STALE_AFTER:
        return False
    here = host_identity()
    pid = data.get("pid", "")
    if here is not None and data.get(HOST_FIELD) == here and pid.isdigit():
        # A previous incarnation of this very process (a restarted container's PID 1, say) is dead too.
        return int(pid) != os.getpid() and pid_alive(int(pid))
    return True


def requeue_abandoned(
    redis: Redis, platform: Platform | None = None, *, current: str | None = None
) -> list[str]:
    """Put the started jobs of dead workers back on the queue; returns their ids.

    A job with retries left is queued again at once (one retry used); one
    without is moved to RQ's failed jobs.  With ``platform``, the job's
    record says so too (``queued``, or ``failed`` with the reason).  Several
    workers may run this at the same time: each job is taken by one of them.
    ``current`` is the caller's own worker, never counted as dead.
    """
    queue = Queue(QUEUE, connection=redis)
    registry = StartedJobRegistry(queue=queue)
    requeued = []
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        execution = Execution(execution_id, job_id, connection=redis)
        with contextlib.suppress(ValueError):  # its hash expired: the job's worker is long gone
            execution.refresh()  # type: ignore[no-untyped-call]
        try:
            job: Job | None = Job.fetch(job_id, connection=redis)
        except NoSuchJobError:
            job = None
        worker_name = execution.worker_name or (job.worker_name if job is not None else None) or ""
        if worker_name and worker_alive(redis, worker_name, current=current):
            continue
        if not redis.zrem(registry.key, execution.composite_key):
            continue  # another worker took it meanwhile
        if job is None:
            continue
        status = job.get_status(refresh=False)
        with redis.pipeline() as pipe:
            pipe.multi()  # one transaction: the job is queued again (or failed) and its execution gone
            execution.worker_name = worker_name
            execution.delete(job, pipe)
            if status not in (JobStatus.STARTED, JobStatus.QUEUED):
                pipe.execute()  # a leftover entry of a job that ended
                continue
            lost = f"its worker {worker_name or '(unknown)'} died (killed or lost) while running it"
            if job.retries_left:
                job.retries_left -= 1
                job.started_at = job.ended_at = None
                queue.enqueue_job(job, pipeline=pipe)
                pipe.execute()
                requeued.append(job_id)
                log.warning("job %s: %s; queued again (%s retries left)", job_id, lost, job.retries_left)
                _record(platform, job_id, "queued", f"{lost}; queued again")
            else:
                record_job_failure(job, f"AbandonedJobError: {lost}", pipe)
                pipe.execute()
                log.warning("job %s: %s; no retries left, failed", job_id, lost)
                _record(platform, job_id, "failed", f"{lost}; no retries left")
    return requeued


def _record(platform: Platform | None, job_id: str, status: str, error: str) -> None:
    """Note in the job's record (still ``started``) that its worker died."""
    if platform is None:
        return
    from sqlalchemy import update

    from openflix.store.schema import JobRecord

    values: dict[str, Any] = {"status": status, "error": error}
    if status == "failed":
        values["ended_at"] = int(time.time())
    try:
        with platform.engine.begin() as conn:
            conn.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.status == "started")
                .values(**values)
            )
    except Exception:
        log.exception("job %s: could not record that its worker died", job_id)


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker died before the request took effect
        os._exit(1)


class OpenflixWorker(Worker):  # type: ignore[misc]
    """RQ's forking worker: records its machine, takes over abandoned jobs; its horse dies with it."""

    platform: Platform | None = None

    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[no-untyped-call]
        here = host_identity()
        if here is not None:
            self.connection.hset(self.key, HOST_FIELD, here)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()  # type: ignore[no-untyped-call]
        # The horse leads its own process group, so killing the worker's group would spare it; left
        # alone it would finish a job nobody watches any more while that job runs again elsewhere.
        if self.pid is not None:
            _die_with(self.pid)

    def run_maintenance_tasks(self) -> None:
        try:
            requeue_abandoned(self.connection, self.platform, current=self.name)
        except Exception:
            log.exception("could not look for abandoned jobs")
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]


def run_worker(platform: Platform, *, burst: bool = False) -> None:
    """Work the queue until stopped (or, with ``burst``, until it is empty)."""
    from redis import Redis

    url = platform.settings.redis_url
    if not url:
        raise ConfigError(
            "OPENFLIX_REDIS_URL is not set: a worker needs Redis (without it, jobs run in-process)"
        )
    from redis.exceptions import RedisError

    try:
        redis = Redis.from_url(url)
        redis.ping()
    except ValueError as exc:  # not a Redis URL
        raise ConfigError(f"OPENFLIX_REDIS_URL={url!r}: {exc}") from None
    except RedisError as exc:
        raise UnavailableError(f"Redis at {url} cannot be reached: {exc}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    requeue_abandoned(redis, platform)
    if not burst:
        start_clock(platform)
        from openflix.services.fill import start_fill_clock

        start_fill_clock(platform)
    worker = OpenflixWorker(
        [Queue(QUEUE, connection=redis)], connection=redis, job_monitoring_interval=JOB_MONITORING_INTERVAL
    )
    worker.platform = platform
    worker.work(burst=burst, with_scheduler=True)
