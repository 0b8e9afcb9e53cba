"""Fixtures for the model registry: a real moto S3 server in a subprocess.

The server runs as ``python -m moto.server`` in its own process, so whatever
moto, Flask or werkzeug warn about stays out of the test process (which turns
warnings into errors); its log goes to a file shown when it fails to start.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from openflix.registry.artifacts import S3Artifacts

STARTUP_TIMEOUT = 30.0
"""Seconds to wait for the moto server to answer."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_moto(log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``moto.server`` on a free port; retry if another process grabbed the port meanwhile."""
    failures: list[str] = []
    for _attempt in range(3):
        port = _free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(port):
                return proc, port
            time.sleep(0.05)
        _stop(proc)
        failures.append(f"port {port}: exit status {proc.returncode}")
    log_tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"moto server did not start ({'; '.join(failures)}); its log:\n{log_tail}")


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto S3 server for the session; yields its endpoint URL.

    While it runs, ``AWS_ENDPOINT_URL`` points at it, the credentials are the dummy
    ``testing`` pair, the region is ``us-east-1``, and the user's AWS config files
    and profile are out of the way.  The environment is restored afterwards.
    """
    log_path = tmp_path_factory.mktemp("moto") / "moto-server.log"
    proc, port = _start_moto(log_path)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AWS_ENDPOINT_URL", endpoint)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            mp.setenv("AWS_CONFIG_FILE", str(log_path.with_name("no-aws-config")))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(log_path.with_name("no-aws-credentials")))
            for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3"):
                mp.delenv(name, raising=False)
            yield endpoint
    finally:
        _stop(proc)


@pytest.fixture
def s3_store(moto_s3: str) -> Iterator[S3Artifacts]:
    """A store in a fresh bucket of the moto server, under prefix ``models/v1``."""
    store = S3Artifacts(f"openflix-test-{uuid.uuid4().hex[:12]}", "models/v1")
    store.ensure_bucket()
    yield store
    listed = store.client.list_objects_v2(Bucket=store.bucket)
    for obj in listed.get("Contents", []):
        store.client.delete_object(Bucket=store.bucket, Key=obj["Key"])
    store.client.delete_bucket(Bucket=store.bucket)
