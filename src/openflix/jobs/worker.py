"""``openflix worker``: an RQ worker on the ``openflix`` queue, plus the nightly clock.

Before it starts taking jobs, the worker looks for jobs whose worker died
(SIGKILL, lost machine) and puts them back on the queue when they have
retries left, so a killed training job runs again without waiting for RQ's
periodic maintenance.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from openflix.errors import ConfigError
from openflix.jobs.runner import QUEUE
from openflix.jobs.schedule import start_clock

if TYPE_CHECKING:
    from redis import Redis

    from openflix.services.platform import Platform

__all__ = ["requeue_abandoned", "run_worker"]

log = logging.getLogger("openflix.jobs")


def requeue_abandoned(redis: Redis) -> list[str]:
    """Put jobs of dead workers back on the queue; returns their ids."""
    from rq import Queue, Worker
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    queue = Queue(QUEUE, connection=redis)
    registry = StartedJobRegistry(queue=queue)
    live = {w.name for w in Worker.all(connection=redis)}
    requeued = []
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=redis)
        worker_name = job.worker_name
        if worker_name and worker_name in live:
            continue
        registry.remove(job)
        if job.retries_left is not None and job.retries_left > 0:
            job.retries_left -= 1
            job.save()
        queue.enqueue_job(job)
        requeued.append(job_id)
        log.warning("job %s lost its worker %s; queued again", job_id, worker_name)
    return requeued


def run_worker(platform: Platform, *, burst: bool = False) -> None:
    """Work the queue until stopped (or, with ``burst``, until it is empty)."""
    from redis import Redis
    from rq import Queue, Worker

    url = platform.settings.redis_url
    if not url:
        raise ConfigError(
            "OPENFLIX_REDIS_URL is not set: a worker needs Redis (without it, jobs run in-process)"
        )
    redis = Redis.from_url(url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    requeue_abandoned(redis)
    if not burst:
        start_clock(platform)
    Worker([Queue(QUEUE, connection=redis)], connection=redis).work(burst=burst, with_scheduler=True)
