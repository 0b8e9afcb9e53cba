"""The HTTP API: ``create_app()`` builds the APIFlask app (spec at ``/openapi.json``, docs at ``/docs``)."""

from __future__ import annotations

import gc
import logging
from typing import Any

from apiflask import APIFlask
from flask import request
from werkzeug.routing import IntegerConverter, Map, UnicodeConverter

from openflix import __version__
from openflix.api.ratelimit import RateLimiter
from openflix.errors import OpenflixError
from openflix.services.platform import Platform
from openflix.settings import Settings
from openflix.store.db import schema_problem
from openflix.store.tokens import digest

__all__ = ["create_app", "prepare"]


def _rate_key() -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip():
        return "token:" + digest(header[7:].strip())
    return "ip:" + (request.remote_addr or "unknown")


class _IdConverter(IntegerConverter):
    """``<int:…>``: an id beyond the largest BIGINT names nothing stored, so it becomes that largest id.

    It still matches the route (a converter refusing it would make Werkzeug answer 405 for the
    other methods of the same path), and the lookup answers 404 rather than a database error.
    """

    MAX_ID = 2**63 - 1

    def to_python(self, value: str) -> Any:
        number = super().to_python(value)
        return min(number, self.MAX_ID) if isinstance(number, int) else number


class _TextConverter(UnicodeConverter):
    """``<name>`` without NUL characters: PostgreSQL text cannot hold them, so such a name is unknown."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]", 1)


def create_app(
    settings: Settings | None = None,
    *,
    platform: Platform | None = None,
    config: dict[str, Any] | None = None,
) -> APIFlask:
    """The openflix API on ``platform`` (default: adapters from ``OPENFLIX_*`` settings)."""
    from openflix.api import catalog, cdn, inputs, jobs, members, models, ops, problems, schemas, web

    inputs.refuse_unknown_query_parameters()
    platform = platform or Platform(settings or Settings.from_env())
    # No static folder of the app's own: its /static route would shadow the web blueprint's (home.js).
    app = APIFlask(
        "openflix",
        title="openflix API",
        version=__version__,
        spec_path="/openapi.json",
        docs_path="/docs",
        static_folder=None,  # type: ignore[arg-type]
    )
    app.config.update(
        MAX_CONTENT_LENGTH=int(platform.settings.max_body_mb * 1024 * 1024),
        HTTP_ERROR_SCHEMA=schemas.Problem,
        VALIDATION_ERROR_SCHEMA=schemas.Problem,
        SPEC_FORMAT="json",
        SYNC_LOCAL_SPEC=False,
        DESCRIPTION=(
            "The openflix back end: titles, members, viewing events, personalized home rows, "
            "a model registry with A/B tests, and background jobs. Every error is RFC 9457 problem details."
        ),
        SECURITY_SCHEMES={"BearerAuth": {"type": "http", "scheme": "bearer"}},
        SWAGGER_UI_CSS="/static/swagger-ui/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS="/static/swagger-ui/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="/static/swagger-ui/swagger-ui-standalone-preset.js",
        DOCS_FAVICON="/static/swagger-ui/favicon-32x32.png",
    )
    app.config.update(config or {})
    app.url_map.converters.update(int=_IdConverter, default=_TextConverter, string=_TextConverter)
    app.extensions["openflix"] = platform
    problems.install(app)
    ops.instrument(app)
    limiter = RateLimiter(platform.settings.rate_limit, platform.settings.redis_url)
    exempt = {"ops.healthz", "ops.readyz", "ops.metrics"}  # operations routes are never limited

    @app.before_request
    def _limit() -> Any:
        if request.endpoint in exempt:
            return None
        key = _rate_key()
        if limiter.hit(key):
            return None
        return problems.problem(
            429,
            f"rate limit exceeded ({limiter.description}); slow down",
            headers={"Retry-After": str(limiter.retry_after(key))},
        )

    for bp in (ops.bp, catalog.bp, members.bp, models.bp, jobs.bp, cdn.bp, web.bp):
        app.register_blueprint(bp)
    inputs.refuse_query_where_none_is_read(app)
    return app


def prepare(app: APIFlask) -> None:
    """Load the production model, the region caches and the steering snapshot, then freeze what is loaded.

    What boot loaded (modules, the model, catalogs) lives as long as the
    worker: ``gc.freeze()`` takes it out of the cyclic garbage collector's
    walks, which otherwise pause requests for 100 ms and more.
    """
    platform = app.extensions["openflix"]
    log = logging.getLogger("openflix.api")
    try:
        problem = schema_problem(platform.engine)
    except OpenflixError as exc:  # e.g. the database is down: /readyz says so until it answers
        problem = str(exc)
    if problem is not None:  # nothing to warm up from; /readyz and every request say why
        log.warning("not warmed up: %s", problem)
        gc.freeze()
        return
    try:
        platform.home.warm_up()
    except OpenflixError as exc:  # no model yet: /readyz says so until one is promoted
        log.warning("not warmed up: %s", exc)
    try:
        platform.steering.snapshot()  # the placement: a title -> appliances set for every copy
    except Exception as exc:  # e.g. a schema without the CDN tables yet: steering says so when asked
        log.warning("steering not warmed up: %s", exc)
    gc.freeze()
