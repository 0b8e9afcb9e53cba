"""Gunicorn settings of ``openflix serve`` (override any with ``GUNICORN_CMD_ARGS``).

Workers are plain sync workers with a few threads each: the home endpoint is
CPU-bound NumPy, and threads let a worker answer health checks while another
request computes.  Prometheus metrics are shared between workers through
``PROMETHEUS_MULTIPROC_DIR`` (created per server when unset).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

bind = os.environ.get("OPENFLIX_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("OPENFLIX_WORKERS", "2"))
threads = int(os.environ.get("OPENFLIX_THREADS", "2"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("OPENFLIX_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("OPENFLIX_LOG_LEVEL", "info")
preload_app = False
raw_env = ["OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "NUMBA_NUM_THREADS=1"]

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="openflix-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
