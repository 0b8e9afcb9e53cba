"""The API against its own OpenAPI document: Schemathesis property tests, in process, on each backend.

Every documented operation (but ``POST /jobs``) is called with generated requests and the admin token;
no response may be a 5xx, and each must have a documented status, media type and body schema.  Errors
must be RFC 9457 problem details, and a method a route does not take must be 405 naming those it does
take (``Allow``).  (Not Schemathesis's negative-data check: its mutations of the Authorization header
are undone by the token every call here sends, so it flags valid requests.)  Generated ids rarely name
stored rows, so the even ones among the path and body ids are mapped onto ids of stored members, titles
and model versions: the success responses get checked too.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import select

from openflix.api import create_app
from openflix.services.platform import Platform
from openflix.store.schema import Title
from tests.api.conftest import Served, make_settings

MAIN_PATHS = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/titles",
    "/titles/{title_id}",
    "/titles/{title_id}/similar",
    "/titles/{title_id}/availability",
    "/members/{member_id}",
    "/members/{member_id}/history",
    "/members/{member_id}/home",
    "/events",
    "/events/bulk",
    "/models",
    "/models/{version_id}",
    "/models/{version_id}/promote",
    "/models/rollback",
    "/ab-tests",
    "/ab-tests/{name}",
    "/ab-tests/{name}/stop",
    "/jobs",
    "/jobs/{job_id}",
]


def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every error is problem details (RFC 9457) whose status is the response's."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), content_type
    body = response.json()
    assert body["status"] == response.status_code, body
    assert body["type"] == "about:blank" and body["title"] and isinstance(body["detail"], str), body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,
    allow_header_conformance,
    problem_details,
]


def _spec_app() -> Any:
    """An app to read the document from at collection time: the document needs no database."""
    return create_app(platform=Platform(make_settings("sqlite://", "unused-artifacts")))


# Loaded at import so that each operation, on each backend, is a test item of its own (requests go to
# the served app of the backend).  POST /jobs is not fuzzed: it would queue real import and training
# jobs (tests/jobs covers it).
schema = schemathesis.openapi.from_wsgi("/openapi.json", _spec_app()).exclude(method="POST", path="/jobs")


@pytest.fixture(scope="module")
def stored(served: Served) -> dict[str, list[int]]:
    """Ids of stored rows, by the name of the parameter or body field that takes them."""
    with served.platform.engine.connect() as conn:
        titles = list(conn.scalars(select(Title.id).order_by(Title.id).limit(5)))
    return {
        "member_id": [served.member_id, served.other_id],
        "title_id": titles,
        "version_id": [1],
        "version": [1],
    }


def _swap_ids(value: Any, stored: dict[str, list[int]]) -> Any:
    """``value`` with the even numbers of its id fields mapped onto stored ids (odd ones stay unknown).

    A pure function of the generated value, so that a failing case replays and shrinks as generated
    (``schema.given`` would do it by draws, but turns off Schemathesis's coverage phase).
    """
    if isinstance(value, list):
        return [_swap_ids(v, stored) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: stored[k][v // 2 % len(stored[k])]
        if k in stored and type(v) is int and v % 2 == 0
        else _swap_ids(v, stored)
        for k, v in value.items()
    }


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: Any, served: Served, stored: dict[str, list[int]]) -> None:
    if case.path_parameters:
        case.path_parameters = _swap_ids(case.path_parameters, stored)
    if isinstance(case.body, dict):
        case.body = _swap_ids(case.body, stored)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {served.admin}"}, checks=CHECKS, app=served.client.application
    )


def test_document_is_openapi_3_with_the_main_paths(served: Served) -> None:
    r = served.get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    spec = r.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "openflix API"
    assert set(MAIN_PATHS) <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert not [name for name in spec["components"]["schemas"] if name[-1].isdigit()]  # no VersionOut1
    storage = spec["components"]["schemas"]["ModelIn"]["properties"]["storage_tb"]
    assert storage["exclusiveMinimum"] == 0  # as validated: a model stores more than 0 TB
    assert served.post("/cdn/appliance-models", served.admin, json={
        "name": "empty", "kind": "storage", "storage_tb": 0, "throughput_gbps": 1
    }).status_code == 422  # fmt: skip


def test_the_document_is_built_without_a_schema_registered_twice() -> None:
    # apispec warns, and a reference may then point at the other registration (ComponentIn was both a
    # request body of its own and nested in ApplianceIn)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _spec_app().test_client().get("/openapi.json").status_code == 200
    assert not [str(w.message) for w in caught if "already been added" in str(w.message)]


def test_document_says_errors_are_problem_details(served: Served) -> None:
    spec = served.get("/openapi.json").get_json()
    errors = [
        (path, method, status, response)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if status >= "400"
    ]
    assert len(errors) > 40
    for path, method, status, response in errors:
        assert list(response["content"]) == ["application/problem+json"], (method, path, status)
        assert response["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    events = spec["paths"]["/events"]["post"]["responses"]
    assert {"400", "401", "403", "409", "422"} <= set(events)
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_docs_page_is_html(served: Served) -> None:
    r = served.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "/openapi.json" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", [f"/titles/{2**63}", f"/members/{2**64}/home", f"/models/{2**31}", f"/models/{2**40}"]
)
def test_ids_beyond_the_store_are_unknown(served: Served, path: str) -> None:
    r = served.get(path, served.admin)
    assert r.status_code == 404 and r.mimetype == "application/problem+json", r.get_data(as_text=True)


def test_a_cell_of_a_version_beyond_the_store_is_invalid(served: Served) -> None:
    cells = [{"name": "a", "version": 1}, {"name": "b", "version": 2**31}]
    r = served.post("/ab-tests", served.admin, json={"name": "too-far", "cells": cells})
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/titles?region=u%00s", "/ab-tests/a%00b", "/jobs/a%00b"])
def test_nul_characters_are_refused_not_a_database_error(served: Served, path: str) -> None:
    r = served.get(path, served.admin)
    assert r.status_code in (404, 422) and r.mimetype == "application/problem+json", r.get_data(as_text=True)


def test_nul_characters_in_a_body_are_invalid(served: Served) -> None:
    event = {"member_id": served.member_id, "title_id": 1, "kind": "play", "device": "t\u0000v"}
    r = served.post("/events", served.admin, json=event)
    assert r.status_code == 422 and "device" in r.get_json()["detail"], r.get_data(as_text=True)
