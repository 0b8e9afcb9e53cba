"""Faults on throwaway servers: a worker SIGKILLed mid-training, Redis and PostgreSQL restarted under the API.

Every server here is a throwaway one from tests/servers.py (free port, own directory); the machine's own
Redis and PostgreSQL are never touched.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.utils import utcformat
from sqlalchemy import select
from werkzeug.serving import make_server

from openflix.api import create_app
from openflix.jobs.runner import QUEUE, RETRY_INTERVALS, JobInfo
from openflix.jobs.worker import STALE_AFTER, host_identity, requeue_abandoned, worker_alive
from openflix.recs.data import Interactions
from openflix.recs.models import load_model
from openflix.services.catalog import import_interactions
from openflix.services.platform import Platform
from openflix.services.training import train_version
from openflix.store.db import upgrade
from openflix.store.schema import Event, JobRecord, ModelVersion
from openflix.store.tokens import create_token
from tests.api.conftest import make_settings
from tests.servers import ThrowawayPostgres, ThrowawayRedis, postgres_missing, redis_server_missing

OPENFLIX = Path(sys.executable).with_name("openflix")

TRAIN_PARAMS = {"model": "als", "params": {"iterations": 100}}
"""A training job that takes a few seconds on store_data.

ALS's cost is linear in its sweeps over the data: 100 sweeps (the default is 15) on the 4,862 events of
store_data take some 2-4 s for the holdout fit plus the final fit — long enough to kill the worker in
the middle of it, short enough for the retry to end quickly.  (The default sequential model trains in
~0.3 s; on the full latest-small it takes ~50 s.)  Should a machine ever train it faster than the test
waits before the kill, the test fails saying so rather than passing without a kill mid-training."""


def _need_servers() -> None:
    reason = redis_server_missing() or postgres_missing()
    if reason:
        pytest.skip(reason)


# ------------------------------------------------------------------------------------------ processes


def _session(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid`` (Linux /proc)."""
    pids = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
            pids.append(int(stat_path.parent.name))
    return pids


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process a worker started (cleanup, whatever state it is in)."""
    for pid in _session(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


class Workers:
    """``openflix worker`` subprocesses, each in its own session, logs in files."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.procs) + 1}.log").open("wb")
        proc = subprocess.Popen(
            [str(OPENFLIX), "worker"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        """The whole log of the ``n``-th worker (1-based)."""
        return (self.logs / f"worker-{n}.log").read_text(errors="replace")

    def tail(self) -> str:
        out = []
        for i in range(1, len(self.procs) + 1):
            text = (self.logs / f"worker-{i}.log").read_text(errors="replace")
            out.append(f"--- worker {i} ---\n" + "\n".join(text.splitlines()[-25:]))
        return "\n".join(out)

    def stop_all(self) -> None:
        for proc in self.procs:
            _kill_session(proc)


@dataclass
class JobPlatform:
    """Throwaway Redis and PostgreSQL with store_data imported, and ``openflix worker`` processes on them."""

    platform: Platform
    redis: Redis
    redis_url: str
    artifacts: Path
    workers: Workers

    def start_and_kill_mid_job(self, job_id: str) -> float:
        """Start a worker, SIGKILL its process group once it runs ``job_id``; the time of the kill."""
        worker = self.workers.start()
        deadline = time.monotonic() + 30
        while self.platform.jobs.get(job_id).status != "started":
            assert worker.poll() is None, f"the worker exited early:\n{self.workers.tail()}"
            assert time.monotonic() < deadline, f"the job never started:\n{self.workers.tail()}"
            time.sleep(0.02)
        time.sleep(0.5)  # into the training (it reads the store first)
        # A crash: SIGKILL to the worker's process group, as a supervisor or the OOM killer would send it.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = time.monotonic()
        # The work horse leads a process group of its own: it must die with its worker, not go on
        # training unsupervised while the job runs again elsewhere.
        while _session(worker.pid) and time.monotonic() < killed_at + 5:
            time.sleep(0.02)
        assert not _session(worker.pid), "the work horse outlived its killed worker"
        info = self.platform.jobs.get(job_id)
        assert info.status == "started" and info.attempts == 1, f"the job ended before the kill: {info}"
        with self.platform.engine.connect() as conn:
            assert conn.scalar(select(ModelVersion.id)) is None, "a version registered before the kill"
        return killed_at


@pytest.fixture
def job_platform(tmp_path: Path, store_data: Interactions) -> Iterator[JobPlatform]:
    _need_servers()
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to tell which processes a worker left behind")
    with ThrowawayRedis() as redis_server, ThrowawayPostgres() as pg:
        artifacts = tmp_path / "artifacts"
        settings = make_settings(pg.url, str(artifacts), redis_url=redis_server.url)
        platform = Platform(settings)
        upgrade(platform.engine)
        import_interactions(platform.engine, store_data, settings.region_list)
        env = {
            **os.environ,
            "OPENFLIX_DATABASE_URL": pg.url,
            "OPENFLIX_REDIS_URL": redis_server.url,
            "OPENFLIX_ARTIFACTS": str(artifacts),
            "OPENFLIX_REGIONS": settings.regions,
            "OPENFLIX_RETRAIN_AT": "off",
        }
        workers = Workers(env, tmp_path)
        redis = Redis.from_url(redis_server.url, socket_timeout=10)
        try:
            yield JobPlatform(platform, redis, redis_server.url, artifacts, workers)
        finally:
            workers.stop_all()
            platform.close()
            redis.close()


def _wait_for_end(jp: JobPlatform, job_id: str, timeout: float) -> JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = jp.platform.jobs.get(job_id)
        if info.status == "finished" or (info.status == "failed" and info.attempts > len(RETRY_INTERVALS)):
            return info
        assert time.monotonic() < deadline, f"the job did not end: {info}\n{jp.workers.tail()}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ 1. worker SIGKILL


def test_worker_killed_mid_training_is_retried_once_and_registers_one_version(
    tmp_path: Path, job_platform: JobPlatform
) -> None:
    t_start = time.monotonic()
    jp = job_platform
    job = jp.platform.jobs.submit("train", TRAIN_PARAMS)
    killed_at = jp.start_and_kill_mid_job(job.id)
    jp.workers.start()
    info = _wait_for_end(jp, job.id, 40)
    recovered = time.monotonic() - killed_at
    jp.workers.stop_all()

    assert info.status == "finished", f"{info}\n{jp.workers.tail()}"
    assert info.attempts >= 2
    assert info.error is None and info.result is not None
    assert f"job {job.id}: its worker" in jp.workers.log(2), "the new worker did not take the job over"

    # RQ's view: one retry used, nothing left running or queued.
    rq_job = Job.fetch(job.id, connection=jp.redis)
    assert rq_job.get_status() == "finished"
    assert rq_job.retries_left == len(RETRY_INTERVALS) - 1
    queue = Queue(QUEUE, connection=jp.redis)
    assert StartedJobRegistry(queue=queue).get_job_ids(cleanup=False) == []
    assert queue.count == 0

    # The registry: exactly the version the job reports, whole and loadable; nothing half-written.
    with jp.platform.engine.connect() as conn:
        versions = conn.execute(select(ModelVersion.id, ModelVersion.artifact)).all()
        results = [r for (r,) in conn.execute(select(JobRecord.result)) if r]
    assert [v.id for v in versions] == [info.result["version"]]
    assert {r["version"] for r in results} == {v.id for v in versions}, "a version no job registered"
    for version in versions:
        assert jp.platform.artifacts.exists(version.artifact)
        path = jp.platform.artifacts.get(version.artifact, tmp_path / f"v{version.id}.npz")
        model = load_model(path)
        assert model.get_params()["iterations"] == TRAIN_PARAMS["params"]["iterations"]
    stored = sorted(p for p in jp.artifacts.rglob("*") if p.is_file())
    assert all(not p.name.endswith(".part") for p in stored), stored
    took = time.monotonic() - t_start
    print(f"\nworker kill: the job finished {recovered:.1f} s after the kill; the test took {took:.1f} s")


def test_worker_killed_on_the_last_attempt_fails_the_job_with_the_reason(job_platform: JobPlatform) -> None:
    jp = job_platform
    job = jp.platform.jobs.submit("train", TRAIN_PARAMS)
    rq_job = Job.fetch(job.id, connection=jp.redis)
    rq_job.retries_left = 0  # as if the earlier attempts had failed already
    rq_job.save()
    jp.start_and_kill_mid_job(job.id)

    assert requeue_abandoned(jp.redis, jp.platform) == []

    rq_job = Job.fetch(job.id, connection=jp.redis)
    assert rq_job.get_status() == "failed"
    queue = Queue(QUEUE, connection=jp.redis)
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()
    assert StartedJobRegistry(queue=queue).get_job_ids(cleanup=False) == []
    assert queue.count == 0
    info = jp.platform.jobs.get(job.id)
    assert info.status == "failed" and info.ended_at is not None
    assert info.error is not None and "died" in info.error and "no retries left" in info.error


def test_worker_alive_tells_dead_workers_from_live_ones() -> None:
    _need_servers()
    finished = subprocess.Popen(["true"])
    finished.wait()
    here = host_identity()
    now = datetime.now(UTC)
    fresh, stale = utcformat(now), utcformat(now - timedelta(seconds=STALE_AFTER + 5))
    with ThrowawayRedis() as server:
        redis = Redis.from_url(server.url)

        def worker(name: str, **fields: object) -> str:
            redis.hset(f"rq:worker:{name}", mapping={k: str(v) for k, v in fields.items()})
            return name

        assert not worker_alive(redis, "never-registered")
        assert not worker_alive(redis, worker("stale", last_heartbeat=stale, pid=os.getpid()))
        assert not worker_alive(redis, worker("dead", last_heartbeat=fresh, death=fresh))
        assert worker_alive(
            redis, worker("elsewhere", last_heartbeat=fresh, pid=finished.pid, openflix_host="x")
        )
        if here is not None:  # Linux: processes on this machine are looked up at once
            assert not worker_alive(
                redis, worker("gone", last_heartbeat=fresh, pid=finished.pid, openflix_host=here)
            )
            assert worker_alive(
                redis, worker("parent", last_heartbeat=fresh, pid=os.getppid(), openflix_host=here)
            )
            me = worker("me", last_heartbeat=fresh, pid=os.getpid(), openflix_host=here)
            assert not worker_alive(redis, me), "a former process with this pid (a restarted container's)"
            assert worker_alive(redis, me, current="me")
        redis.close()


# ----------------------------------------------------------- 2. Redis and PostgreSQL restarted under the API

RECOVERY_SECONDS = 5.0
"""The API must answer 2xx again this soon after a restarted server is back."""
OUTAGE_SECONDS = 1.0
"""How long a server stays down in a stop-then-start (restart() alone is over in a blink for Redis)."""
KINDS = ("post", "home")
"""The traffic: POST /events, GET /members/{id}/home."""


@dataclass(frozen=True)
class Call:
    """One HTTP request of the traffic threads."""

    kind: str
    sent: float
    done: float
    status: int
    """0: no HTTP answer at all (the connection failed or timed out)."""
    content_type: str
    body: bytes
    key: str | None = None


class Traffic:
    """Threads posting events with unique idempotency keys and reading a home page, over real HTTP."""

    def __init__(self, port: int, operator: str, member: str, member_id: int, title_ids: list[int]) -> None:
        self.port = port
        self.operator = operator
        self.member = member
        self.member_id = member_id
        self.title_ids = title_ids
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._in_flight = 0
        self._threads: list[threading.Thread] = []

    def request(self, method: str, path: str, token: str, body: object = None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        headers = {"Authorization": f"Bearer {token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 0, "", repr(exc).encode()
        finally:
            conn.close()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            self._in_flight -= 1

    def _may_send(self) -> bool:
        """Wait while paused; False once stopped.  A True answer counts a request in flight."""
        while not self._stop.is_set():
            with self._lock:
                if self._go.is_set():
                    self._in_flight += 1
                    return True
            self._go.wait(0.05)
        return False

    def pause(self) -> None:
        """Hold the threads back and wait until no request is in flight."""
        with self._lock:
            self._go.clear()
        deadline = time.monotonic() + 30
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self._in_flight, "requests still in flight after 30 s"

    def resume(self) -> None:
        self._go.set()

    def _post_events(self, worker: int) -> None:
        i = 0
        while self._may_send():
            i += 1
            key = f"fault-{worker}-{i}"
            body = {
                "member_id": self.member_id,
                "title_id": self.title_ids[i % len(self.title_ids)],
                "kind": "play",
                "position_s": 30,
                "duration_s": 3000,
                "idempotency_key": key,
            }
            sent = time.monotonic()
            status, ctype, data = self.request("POST", "/events", self.operator, body)
            self._record(Call("post", sent, time.monotonic(), status, ctype, data, key))
            time.sleep(0.005)

    def _read_home(self) -> None:
        while self._may_send():
            sent = time.monotonic()
            status, ctype, data = self.request("GET", f"/members/{self.member_id}/home?n=5", self.member)
            self._record(Call("home", sent, time.monotonic(), status, ctype, data))
            time.sleep(0.005)

    def start(self) -> None:
        targets: list[Callable[[], None]] = [
            lambda: self._post_events(1),
            lambda: self._post_events(2),
            self._read_home,
        ]
        for target in targets:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a traffic thread hangs"

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for_ok(self, since: float, kind: str, timeout: float) -> float | None:
        """Seconds from ``since`` to the first 2xx of ``kind`` sent after it (None: none within timeout)."""
        deadline = since + timeout
        while True:
            ok = [
                c.done
                for c in self.snapshot()
                if c.kind == kind and c.sent >= since and 200 <= c.status < 300
            ]
            if ok:
                return min(ok) - since
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)


@dataclass
class ApiServer:
    """The real API app served by werkzeug on a thread of this process."""

    platform: Platform
    port: int
    stop: Callable[[], None]


@pytest.fixture
def fault_servers() -> Iterator[tuple[ThrowawayRedis, ThrowawayPostgres]]:
    _need_servers()
    with ThrowawayRedis() as redis_server, ThrowawayPostgres() as pg:
        yield redis_server, pg


def test_api_recovers_from_redis_then_postgres_restarts_without_losing_acknowledged_events(
    tmp_path: Path,
    store_data: Interactions,
    fault_servers: tuple[ThrowawayRedis, ThrowawayPostgres],
) -> None:
    redis_server, pg = fault_servers
    settings = make_settings(pg.url, str(tmp_path / "artifacts"), redis_url=redis_server.url)
    platform = Platform(settings)
    upgrade(platform.engine)
    import_interactions(platform.engine, store_data, settings.region_list)
    train_version(platform.engine, platform.artifacts, settings.model, do_promote=True)
    member_id = int(store_data.user_ids[0])
    with platform.engine.begin() as conn:
        _, operator = create_token(conn, "operator")
        _, member = create_token(conn, "member", member_id)
    redis = Redis.from_url(redis_server.url, socket_timeout=5)
    app = create_app(platform=platform)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    titles = [int(t) for t in store_data.item_ids[:50]]
    traffic = Traffic(server.server_port, operator, member, member_id, titles)
    recoveries: dict[str, dict[str, float | None]] = {}
    job_answers: list[tuple[str, int, str, bytes]] = []
    quiet: list[tuple[float, float]] = []
    Action = Callable[[], None]

    def submit_job(when: str) -> None:
        job_answers.append((when, *traffic.request("POST", "/jobs", operator, {"kind": "evaluate"})))

    def outage(name: str, down: Action, up: Action, during: Action = lambda: None) -> None:
        """Take a server down for OUTAGE_SECONDS under traffic; time the recovery once it is back."""
        down()
        during()
        time.sleep(OUTAGE_SECONDS)
        up()
        back = time.monotonic()
        recoveries[name] = {kind: traffic.wait_for_ok(back, kind, RECOVERY_SECONDS + 5) for kind in KINDS}
        time.sleep(0.5)  # some traffic on the recovered server before the next fault

    def unnoticed(name: str, restart: Action, after: Action = lambda: None) -> None:
        """Restart a server while no request runs, so every pooled connection to it is dead when traffic
        resumes: not one request may fail afterwards (pre-ping / reconnects must handle it)."""
        traffic.pause()
        restart()
        back = time.monotonic()
        after()
        traffic.resume()
        recoveries[name] = {kind: traffic.wait_for_ok(back, kind, RECOVERY_SECONDS + 5) for kind in KINDS}
        time.sleep(0.5)
        quiet.append((back, time.monotonic()))  # requests sent and answered in here must all succeed

    try:
        traffic.start()
        begun = time.monotonic()
        for kind in KINDS:
            assert traffic.wait_for_ok(begun, kind, 10) is not None, f"no 2xx {kind} before any fault"

        outage("redis stop + start", redis_server.stop, redis_server.start, lambda: submit_job("redis down"))
        outage("redis kill + start", redis_server.kill, redis_server.start)
        # The throwaway Redis keeps nothing across a restart: submit the job after the last one.
        unnoticed("redis restart unnoticed", redis_server.restart, lambda: submit_job("redis back"))
        # Rate limiting works again on the new Redis (swallow_errors hides the outage; it must not hide a
        # limiter that never reconnects).
        assert any(redis.scan_iter("LIMITS*")), "the rate limiter wrote nothing to Redis after its restart"
        outage("postgres stop(fast) + start", lambda: pg.stop("fast"), pg.start)
        outage("postgres kill + start", pg.kill, pg.start)
        unnoticed("postgres restart(fast) unnoticed", lambda: pg.restart(mode="fast"))
    finally:
        traffic.stop()
        server.shutdown()
        serving.join(timeout=10)
        server.server_close()

    calls = traffic.snapshot()
    summary = _summary(calls, recoveries)
    print("\n" + summary)

    # A job submitted while Redis was down: a clean 503, and no record left "queued" that nothing runs.
    (_, down_status, down_type, _), (_, up_status, _, up_body) = job_answers
    assert down_status == 503 and down_type.startswith("application/problem+json"), job_answers[0]
    assert up_status == 202, job_answers[1]
    queued_id = json.loads(up_body)["id"]
    with platform.engine.connect() as conn:
        records = conn.execute(select(JobRecord.id, JobRecord.status)).all()
    assert [tuple(r) for r in records] == [(queued_id, "queued")], records
    assert redis.exists(f"rq:job:{queued_id}")
    redis.close()

    failed = [c for c in calls for a, b in quiet if a <= c.sent and c.done <= b and not 200 <= c.status < 300]
    assert not failed, f"requests failed after an unnoticed restart: {failed[:3]}\n{summary}"
    # Every answer is 2xx, or a clean problem+json 503 (or 4xx); never a 500, never HTML, never silence.
    bad = [c for c in calls if not _clean(c)]
    assert not bad, f"{len(bad)} unclean answers, e.g. {bad[:3]}\n{summary}"
    # The API recovered by itself, quickly, after each server came back.
    for name, kinds in recoveries.items():
        for kind, seconds in kinds.items():
            assert seconds is not None and seconds <= RECOVERY_SECONDS, f"{name}: {kind} {seconds}\n{summary}"
    # No acknowledged event is lost.
    acknowledged = {c.key for c in calls if c.kind == "post" and c.status in (200, 201)}
    with platform.engine.connect() as conn:
        stored = set(conn.scalars(select(Event.idempotency_key).where(Event.idempotency_key.like("fault-%"))))
    platform.close()
    assert acknowledged, "no event was acknowledged"
    lost = acknowledged - stored
    assert not lost, f"{len(lost)} acknowledged events are missing, e.g. {sorted(lost)[:5]}"


def _clean(call: Call) -> bool:
    if 200 <= call.status < 300:
        return True
    if call.status == 503 or 400 <= call.status < 500:
        if not call.content_type.startswith("application/problem+json"):
            return False
        body = json.loads(call.body)
        return bool(body.get("status") == call.status and body.get("detail"))
    return False


def _summary(calls: list[Call], recoveries: dict[str, dict[str, float | None]]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for c in calls:
        counts[(c.kind, c.status)] = counts.get((c.kind, c.status), 0) + 1
    lines = ["answers: " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(counts.items()))]
    for name, kinds in recoveries.items():
        lines.append(
            f"{name}: first 2xx after the server was back: "
            + ", ".join(f"{k} {'never' if v is None else f'{v:.2f} s'}" for k, v in kinds.items())
        )
    slow = max((c.done - c.sent for c in calls), default=0.0)
    lines.append(f"slowest answer {slow:.2f} s; {len(calls)} requests")
    return "\n".join(lines)
