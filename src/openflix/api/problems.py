"""Every error as RFC 9457 problem details (``application/problem+json``), never HTML or a traceback."""

from __future__ import annotations

import logging
import traceback
from pathlib import PurePath
from typing import Any

from apiflask import APIFlask, HTTPError
from flask import Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from openflix.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DataError,
    ForbiddenError,
    ModelError,
    NotFoundError,
    OpenflixError,
    UnavailableError,
)
from openflix.store.db import missing_table_or_column, schema_problem

__all__ = ["MEDIA_TYPE", "install", "problem", "status_of"]

log = logging.getLogger("openflix.api")

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_of(exc: OpenflixError) -> int:
    """The HTTP status an openflix error stands for."""
    for kind, status in (
        (ForbiddenError, 403),
        (AuthError, 401),
        (NotFoundError, 404),
        (ConflictError, 409),
        (DataError, 422),
        (UnavailableError, 503),
        (ModelError, 503),
        (ConfigError, 500),
    ):
        if isinstance(exc, kind):
            return status
    return 500


def problem(
    status: int, detail: str, *, errors: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """A problem-details response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="openflix"'
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def install(app: APIFlask) -> None:
    """Register the handlers that turn every error into problem details, and document their media type."""

    app.spec_processor(_document_problems)

    @app.error_processor
    def _http_error(error: HTTPError) -> Response:
        detail = error.message
        errors = error.detail or None
        if error.status_code == 422 and errors:
            errors = _name_the_expected(errors)
            detail = "the request does not match the schema: " + _summary(errors)
        if error.status_code == 400 and request.is_json:
            detail = "the request body is not valid JSON"
        return problem(
            error.status_code,
            str(detail or ""),
            errors=errors,
            headers={k: str(v) for k, v in dict(error.headers or {}).items()},
        )

    @app.errorhandler(OpenflixError)
    def _openflix_error(exc: OpenflixError) -> Response:
        status = status_of(exc)
        if status >= 500 and status != 503:
            log.exception("internal error")
            return problem(status, "an internal error occurred; it has been logged")
        return problem(status, str(exc), headers={"Retry-After": "5"} if status == 503 else None)

    @app.errorhandler(HTTPException)
    def _werkzeug(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 400 and request.is_json:
            return problem(400, "the request body is not valid JSON")
        # its own headers but the media type: a 405's ``Allow`` (RFC 9110), a 416's ``Content-Range``
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return problem(status, exc.description or TITLES.get(status, "error"), headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if (unreadable := _unreadable_json(exc)) is not None:
            return problem(400, f"the request body is not valid JSON: {unreadable}")
        if missing_table_or_column(exc) and (missing := _schema_problem()) is not None:
            log.error("%s (%s)", missing, type(exc).__name__)
            return problem(503, missing, headers={"Retry-After": "5"})
        log.exception("unexpected error")
        return problem(500, "an internal error occurred; it has been logged")


def _unreadable_json(exc: Exception) -> str | None:
    """Why the request's JSON body could not be read, when ``exc`` came out of the JSON decoder with
    what the body parser does not catch: nesting deeper than the recursion limit, or an integer
    longer than Python converts (4,300 digits); else None."""
    if not isinstance(exc, RecursionError | ValueError) or not request.is_json:
        return None
    frames = traceback.walk_tb(exc.__traceback__)
    if not any(
        PurePath(frame.f_code.co_filename).parts[-2:] == ("json", "decoder.py") for frame, _ in frames
    ):
        return None
    return "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc).split(";")[0]


def _schema_problem() -> str | None:
    """After a database error: why this version cannot use the schema, if that is the cause."""
    try:
        return schema_problem(current_app.extensions["openflix"].engine)
    except Exception:  # the database is gone too: the original error is the one to log
        return None


def _document_problems(spec: dict[str, Any] | str) -> dict[str, Any] | str:
    """Document errors as they are served: ``application/problem+json``; 400/413 for bodies, 429.

    APIFlask documents every response as ``application/json`` and knows
    nothing of the 400 a malformed JSON body gets, the 413 of a body over the
    size limit, or the 429 of the rate limiter.
    """
    if isinstance(spec, str):  # SPEC_FORMAT yaml: left as generated
        return spec
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            extra = {}
            if "requestBody" in operation:
                extra["400"] = "The body is not valid JSON"
                extra["413"] = "The body is larger than OPENFLIX_MAX_BODY_MB"
            if operation.get("security"):  # authenticated routes are rate-limited per token
                extra["429"] = "Too many requests for this token (OPENFLIX_RATE_LIMIT)"
            for status, description in extra.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    },
                )
            for status, response in responses.items():
                content = response.get("content", {})
                if str(status)[:1] in ("4", "5") and "application/json" in content:
                    content[MEDIA_TYPE] = content.pop("application/json")
    return spec


UNKNOWN = "Unknown field."
"""marshmallow's message for a key the schema does not have."""


def _name_the_expected(errors: Any) -> Any:
    """``errors`` with marshmallow's bare "Unknown field." saying what the route takes there instead
    (nested items too: ``json.events.3.member`` names an event's fields)."""
    if not isinstance(errors, dict):
        return errors
    view = current_app.view_functions.get(request.endpoint or "")
    spec = getattr(view, "_spec", {})
    schemas = {location: schema for schema, location in spec.get("args", ())}
    if spec.get("body") is not None:
        schemas["json"] = spec["body"]
    return {
        location: _expected(fields, schemas.get(location), "parameter" if location == "query" else "field")
        for location, fields in errors.items()
    }


def _expected(node: Any, schema: Any, noun: str) -> Any:
    """One schema's errors with its unknown keys named (marshmallow error dicts: field -> messages,
    a nested schema's dict, or a list's index -> the item's dict)."""
    known = getattr(schema, "fields", None)
    if not isinstance(known, dict) or not isinstance(node, dict):
        return node
    by_key = {f.data_key or n: f for n, f in known.items() if not f.dump_only}
    out: dict[Any, Any] = {}
    for key, value in node.items():
        if value == [UNKNOWN]:
            out[key] = [f"not a {noun} of this request; expected one of {', '.join(sorted(by_key))}"]
            continue
        field: Any = by_key.get(str(key))
        inner: Any = getattr(field, "inner", None)  # List(Nested(...)): errors by item index
        if getattr(inner, "schema", None) is not None and isinstance(value, dict):
            out[key] = {i: _expected(v, inner.schema, noun) for i, v in value.items()}
        elif getattr(field, "schema", None) is not None:  # Nested(...)
            out[key] = _expected(value, field.schema, noun)
        else:
            out[key] = value
    return out


def _summary(errors: Any) -> str:
    parts: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list) and node and all(isinstance(x, str) for x in node):
            parts.append(f"{where}: {' '.join(node)}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(errors, "")
    return "; ".join(parts[:5]) or "invalid input"
