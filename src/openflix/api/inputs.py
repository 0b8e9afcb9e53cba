"""Request inputs of hot routes: query arguments validated once per distinct query string.

A query string's validated arguments depend on nothing but the string, and
the home page is asked with one of a handful (``""``, ``"n=10"``): webargs'
parse (a proxy over ``request.args``, then marshmallow's load) and the
decorator's two wrappers cost about 27 µs of a 207 µs cached home request
(median, in process), every time.  :func:`memoized_query`
keeps each distinct string's result; a string that does not validate is not
kept, and answers the same 422 as the plain ``input`` decorator.  A query
parameter the schema does not name is refused (422), as on every route
(:func:`refuse_unknown_query_parameters`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from types import MappingProxyType
from typing import Any, TypeVar, cast

from apiflask import APIBlueprint, APIFlask, HTTPError, Schema
from apiflask.schema_adapters.marshmallow import parser
from flask import request
from marshmallow import RAISE

__all__ = [
    "MEMO_SIZE",
    "memoized_query",
    "refuse_query_where_none_is_read",
    "refuse_unknown_query_parameters",
]

F = TypeVar("F", bound=Callable[..., Any])

MEMO_SIZE = 256
"""Distinct query strings kept per route; past that the memo starts over (clients choose the strings)."""


def refuse_unknown_query_parameters() -> None:
    """Make a query parameter no schema names a 422 on every route that reads the query, instead of
    webargs' default for the query string (ignore it): a misspelt filter must not list everything."""
    parser.DEFAULT_UNKNOWN_BY_LOCATION = {
        **type(parser).DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }


QUERY_FREE = frozenset({"web", "openapi", "static", "ops.metrics", "ops.healthz", "ops.readyz"})
"""Blueprints and endpoints whose query string is not the API's to check: the pages (``/?member=1``
is read by the page's script), the OpenAPI document and files, ``/metrics`` (Prometheus scrapers may
add ``name[]``) and the health checks (monitors add their own; a 422 would take a ready instance out
of rotation)."""


def refuse_query_where_none_is_read(app: APIFlask) -> None:
    """Make any query parameter a 422 on the API routes that read none (``POST
    /models/3/promote?dry_run=1`` must not promote), with the other routes' wording.

    Call it once every blueprint is registered.  It runs before the route's
    token check (a route with a query schema checks its parameters after).
    """
    reads = {
        endpoint: any(
            where in ("query", "querystring") for _, where in getattr(view, "_spec", {}).get("args") or ()
        )
        for endpoint, view in app.view_functions.items()
    }

    @app.before_request
    def _refuse_query() -> Any:
        endpoint = request.endpoint
        if not request.args or endpoint is None or reads.get(endpoint, True) or request.method == "OPTIONS":
            return None
        if endpoint in QUERY_FREE or endpoint.partition(".")[0] in QUERY_FREE:
            return None
        why = ["not a parameter of this request; it takes none"]
        raise HTTPError(422, detail={"query": {name: why for name in request.args}})  # worded as any 422


def memoized_query(
    bp: APIBlueprint, schema: type[Schema], *, arg_name: str = "query", size: int = MEMO_SIZE
) -> Callable[[F], F]:
    """``bp.input(schema, location="query", arg_name=arg_name)``, validating each query string once.

    The view receives a read-only mapping (shared by every request with the
    same query string). The OpenAPI document is the same as with ``bp.input``:
    its decorator annotates the view's spec (APIFlask's ``_spec``, a dict the
    wrappers share), but its runtime wrappers — two more calls per request,
    one building a proxy of ``request.args`` that nothing reads — are left out.
    """
    instance = schema()

    def decorator(view: F) -> F:
        memo: dict[bytes, Mapping[str, Any]] = {}

        @wraps(view)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            raw = request.query_string
            arguments = memo.get(raw)
            if arguments is None:
                arguments = MappingProxyType(parser.parse(instance, request, location="query"))
                if len(memo) >= size:
                    memo.clear()
                memo[raw] = arguments
            kwargs[arg_name] = arguments
            return view(*args, **kwargs)

        if not hasattr(parsed, "_spec"):
            parsed._spec = {}  # type: ignore[attr-defined]
        bp.input(schema, location="query", arg_name=arg_name, validation=False)(parsed)  # fills parsed._spec
        return cast(F, parsed)

    return decorator
