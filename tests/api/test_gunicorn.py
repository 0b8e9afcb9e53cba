"""The real server: Gunicorn workers follow promotion and rollback with no restart and no failed request."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from openflix.cli.platform import gunicorn_argv
from openflix.recs.data import Interactions
from openflix.registry.versions import promote, rollback
from openflix.services.training import train_version
from tests.api.conftest import Served, make_settings, serve_platform
from tests.servers import free_port


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, store_data: Interactions
) -> Iterator[tuple[Served, int]]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    settings = make_settings(f"sqlite:///{tmp / 'openflix.db'}", str(tmp / "artifacts"), model_poll=0.2)
    served = serve_platform(settings, store_data, "sqlite")
    port = free_port()
    env = {
        **os.environ,
        "OPENFLIX_DATABASE_URL": settings.database_url,
        "OPENFLIX_ARTIFACTS": settings.artifacts,
        "OPENFLIX_MODEL_POLL": "0.2",
        "OPENFLIX_RETRAIN_AT": "off",
        "OPENFLIX_RATE_LIMIT": "1000000/minute",
        "OPENFLIX_BIND": f"127.0.0.1:{port}",
        "OPENFLIX_WORKERS": "2",
        "OPENFLIX_REDIS_URL": "",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        gunicorn_argv(),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _get(port, "/readyz")[0] != 200:
            assert proc.poll() is None, (tmp / "gunicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not become ready"
            time.sleep(0.2)
        yield served, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        served.platform.close()


def _get(port: int, path: str, token: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        body = response.read()
        ctype = response.getheader("Content-Type", "")
        return response.status, json.loads(body) if "json" in ctype else {"text": body.decode()}
    except OSError:
        return 0, {}
    finally:
        conn.close()


def test_workers_follow_promotion_and_rollback_without_failed_requests(server: tuple[Served, int]) -> None:
    served, port = server
    path = f"/members/{served.member_id}/home"
    first = _get(port, path, served.member)[1]["version"]
    statuses: list[int] = []
    versions: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            status, body = _get(port, path, served.member)
            statuses.append(status)
            if status == 200:
                versions.append(body["version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        new = train_version(served.platform.engine, served.platform.artifacts, "ease")
        for action, target in (("promote", new.id), ("rollback", first)):
            with served.platform.engine.begin() as conn:
                promote(conn, new.id) if action == "promote" else rollback(conn)
            mark = len(versions)
            deadline = time.monotonic() + 20
            while not (len(versions) > mark + 40 and set(versions[-40:]) == {target}):
                assert time.monotonic() < deadline, f"{action}: still serving {sorted(set(versions[-40:]))}"
                time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert {first, new.id} <= set(versions)


def test_metrics_count_requests_of_every_worker(server: tuple[Served, int]) -> None:
    served, port = server
    for _ in range(10):
        assert _get(port, "/titles/1", served.member)[0] == 200
    status, body = _get(port, "/metrics")
    assert status == 200
    from prometheus_client import CONTENT_TYPE_LATEST

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.getheader("Content-Type") == CONTENT_TYPE_LATEST  # it named the charset twice
    lines = [line for line in body["text"].splitlines() if line.startswith("openflix_http_requests_total{")]
    count = sum(float(line.rsplit(" ", 1)[1]) for line in lines if 'route="/titles/<int:title_id>"' in line)
    assert count >= 10
