"""The API against its own OpenAPI document: Schemathesis property tests, in process, per backend."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from openflix.api import create_app
from openflix.services.platform import Platform
from tests.api.conftest import Served, make_settings


def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every error is RFC 9457 problem details whose status is the response's."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), content_type
    body = response.json()
    assert body["status"] == response.status_code, body
    assert body["title"] and isinstance(body["detail"], str), body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_details,
]


def _spec_app() -> Any:
    """An app to read the document from at collection time (the spec needs no data)."""
    return create_app(platform=Platform(make_settings("sqlite://", "unused-artifacts")))


# Loaded at import, so that each operation (per backend) is a test item of its own; the calls go
# to the served app of the backend.  POST /jobs would queue real import and train jobs: not fuzzed.
schema = schemathesis.openapi.from_wsgi("/openapi.json", _spec_app()).exclude(method="POST", path="/jobs")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: Any, served: Served) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {served.admin}"}, checks=CHECKS, app=served.client.application
    )
