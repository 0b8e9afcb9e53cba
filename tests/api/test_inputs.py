"""memoized_query: each distinct query string validated once, failures never kept, the memo bounded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from apiflask import APIBlueprint, APIFlask, Schema
from marshmallow.fields import Integer
from marshmallow.validate import Range

from openflix.api.inputs import memoized_query


class _Query(Schema):
    n = Integer(load_default=10, validate=Range(1, 50))


@pytest.fixture
def app_and_calls() -> tuple[APIFlask, list[Mapping[str, Any]]]:
    calls: list[Mapping[str, Any]] = []
    app = APIFlask("inputs-test")
    bp = APIBlueprint("t", __name__)

    @bp.get("/q")
    @memoized_query(bp, _Query, size=4)
    def view(query: Mapping[str, Any]) -> dict[str, Any]:
        calls.append(query)
        return {"n": query["n"]}

    app.register_blueprint(bp)
    return app, calls


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query strings webargs validates (each call of its parser)."""
    from flask import request

    from openflix.api import inputs

    seen: list[str] = []
    real = inputs.parser.parse

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(request.query_string.decode())
        return real(*args, **kwargs)

    monkeypatch.setattr(inputs.parser, "parse", counting)
    return seen


def test_each_query_string_is_validated_once(app_and_calls: Any, parses: list[str]) -> None:
    app, calls = app_and_calls
    client = app.test_client()
    assert [client.get(p).get_json()["n"] for p in ("/q", "/q?n=3", "/q", "/q?n=3")] == [10, 3, 10, 3]
    assert parses == ["", "n=3"]
    assert calls[0] is calls[2]  # the same validated arguments, shared


def test_arguments_are_read_only(app_and_calls: Any) -> None:
    app, calls = app_and_calls
    app.test_client().get("/q?n=5")
    with pytest.raises(TypeError):
        calls[0]["n"] = 6


def test_a_bad_query_is_422_every_time(app_and_calls: Any, parses: list[str]) -> None:
    app, calls = app_and_calls
    client = app.test_client()
    for _ in range(2):
        r = client.get("/q?n=0")
        assert r.status_code == 422 and "n" in r.get_json()["detail"]["query"]
    assert calls == [] and parses == ["n=0", "n=0"]


def test_the_memo_stays_bounded(app_and_calls: Any, parses: list[str]) -> None:
    """Four strings are kept (the fixture's size); a fifth starts the memo over."""
    app, _ = app_and_calls
    client = app.test_client()
    for n in (1, 2, 3, 4, 5, 5, 1):
        assert client.get(f"/q?n={n}").get_json()["n"] == n
    assert parses == ["n=1", "n=2", "n=3", "n=4", "n=5", "n=1"]


def test_the_query_is_in_the_openapi_document(app_and_calls: Any) -> None:
    app, _ = app_and_calls
    params = app.test_client().get("/openapi.json").get_json()["paths"]["/q"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["minimum"]) for p in params] == [("n", "query", 1)]
