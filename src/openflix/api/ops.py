"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import os
import time
from typing import Any

from apiflask import APIBlueprint
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text

from openflix.api import schemas as s
from openflix.api.auth import auth, principal
from openflix.api.context import platform
from openflix.store.db import schema_problem

bp = APIBlueprint("ops", __name__, tag="Operations")

REQUESTS = Counter("openflix_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "openflix_http_request_seconds",
    "Time to answer an HTTP request (seconds)",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

METRICS_RESPONSES: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
"""``GET /metrics`` answers text, not the JSON APIFlask documents by default."""


def instrument(app: Flask) -> None:
    """Count and time every request by route template."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if "started" in g:
            LATENCY.labels(route).observe(time.perf_counter() - g.started)
        return response


@bp.get("/whoami")
@bp.auth_required(auth)
@bp.output(s.WhoAmI)
def whoami() -> dict[str, Any]:
    """The caller's token: its id, role and member (a cheap way to check a token)."""
    who = principal()
    return {"token_id": who.token_id, "role": who.role.value, "member_id": who.member_id}


@bp.get("/healthz")
@bp.output(s.Health)
def healthz() -> dict[str, Any]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.output(s.Health)
@bp.doc(responses={503: "Not ready: a check failed"})
def readyz() -> Any:
    """Readiness: the database answers at this version's schema, Redis answers (when configured), a model
    is loaded."""
    p = platform()
    checks: dict[str, str] = {}
    try:
        with p.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        problem = schema_problem(p.engine)
        checks["database"] = "ok" if problem is None else f"error: {problem}"
    except Exception as exc:
        checks["database"] = f"error: {str(exc).splitlines()[0][:200]}"
    if p.settings.redis_url:
        try:
            from redis import Redis

            Redis.from_url(p.settings.redis_url, socket_connect_timeout=1, socket_timeout=1).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {str(exc)[:200]}"
    try:
        served = p.holder.current()
        checks["model"] = f"ok: version {served.version}"
    except Exception as exc:
        checks["model"] = f"error: {str(exc).splitlines()[0][:200]}"
    ready = all(v.startswith("ok") for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


@bp.get("/metrics")
@bp.doc(responses=METRICS_RESPONSES)
def metrics() -> Response:
    """Prometheus metrics of this process (of all Gunicorn workers under ``openflix serve``)."""
    from prometheus_client import REGISTRY

    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    # content_type, not mimetype: the latter appends a charset to one that already names it
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
