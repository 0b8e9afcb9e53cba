"""Every error is RFC 9457 problem details with the right status — never HTML, never a 500 for bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from openflix.api import create_app
from openflix.services.platform import Platform
from tests.api.conftest import Served, derived_client
from tests.conftest import fresh_redis


def _problem(r: object, status: int) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])  # type: ignore[attr-defined]
    assert r.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    body = r.get_json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["title"] and body["detail"] and body["type"] == "about:blank"
    return body  # type: ignore[no-any-return]


def test_malformed_json_is_400(served: Served) -> None:
    r = served.post("/events", served.operator, data="{not json", content_type="application/json")
    body = _problem(r, 400)
    assert body["detail"] == "the request body is not valid JSON"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),  # the decoder's recursion
        ('{"member_id": ' + "9" * 5_000 + "}", "value has 5000 digits"),  # past Python's int limit
    ],
)
def test_json_the_decoder_cannot_hold_is_400_not_500(served: Served, body: str, why: str) -> None:
    r = served.post("/events", served.operator, data=body, content_type="application/json")
    assert _problem(r, 400)["detail"].startswith("the request body is not valid JSON: ")
    assert why in r.get_json()["detail"]


def test_unknown_route_and_method_are_404_and_405(served: Served) -> None:
    _problem(served.get("/no/such/route", served.operator), 404)
    r = served.client.delete("/titles", headers={"Authorization": f"Bearer {served.operator}"})
    _problem(r, 405)
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}  # RFC 9110: what it takes


def test_bad_query_values_are_422(served: Served) -> None:
    body = _problem(served.get("/titles?limit=100000", served.member), 422)
    assert "limit" in body["detail"]
    _problem(served.get("/titles?year=abc", served.member), 422)


def test_an_unknown_query_parameter_is_422_naming_it(served: Served) -> None:
    """A misspelt parameter is refused, not ignored: ``/titles?genres=Drama`` would list every title."""
    member = served.member_id
    for path in (
        "/titles?genres=Drama",
        "/titles/1/similar?count=5",
        f"/members/{member}/history?limt=5",
        f"/members/{member}/home?n=5&rows=3",
        f"/members/{member}/home?n=5&rows=3",  # the memoized route refuses it every time
    ):
        body = _problem(served.get(path, served.operator), 422)
        name = path.split("?")[1].split("&")[-1].split("=")[0]
        assert f"query.{name}" in body["detail"], (path, body)
        assert "not a parameter of this request; expected one of " in body["detail"], body
    body = _problem(served.get(f"/members/{member}/home?rows=3", served.operator), 422)
    assert "query.rows: not a parameter of this request; expected one of n" in body["detail"], body
    body = _problem(served.post("/events", served.operator, json={"member": 1}), 422)
    assert "json.member: not a field of this request; expected one of " in body["detail"], body
    assert "member_id" in body["detail"].split("json.member:")[1], body
    good = {"member_id": served.member_id, "title_id": 1, "kind": "play", "timestamp": "2030-01-01T00:00:00Z"}
    bulk = {"events": [good, {**good, "device_type": "tv"}]}
    body = _problem(served.post("/events/bulk", served.operator, json=bulk), 422)
    assert "json.events.1.device_type: not a field of this request; expected one of " in body["detail"], body
    assert "device" in body["detail"].split("json.events.1.device_type:")[1], body
    assert served.get(f"/members/{member}/home?n=5", served.operator).status_code == 200


def test_body_over_the_limit_is_413(served: Served, tmp_path: Path) -> None:
    big = {"events": [{"member_id": 1, "title_id": 1, "kind": "play"}] * 2000}
    with derived_client(served, max_body_mb=0.01) as client:
        r = client.post("/events/bulk", json=big, headers={"Authorization": f"Bearer {served.operator}"})
    _problem(r, 413)


def test_too_many_events_in_one_bulk_is_422(served: Served) -> None:
    events = [{"member_id": served.member_id, "title_id": 1, "kind": "play"}] * 10_001
    _problem(served.post("/events/bulk", served.operator, json={"events": events}), 422)


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_rate_limit_per_token_is_429(served: Served, storage: str) -> None:
    redis_url = fresh_redis() if storage == "redis" else ""
    with derived_client(served, rate_limit="3/minute", redis_url=redis_url) as client:
        _limited(served, client)


def _limited(served: Served, client: FlaskClient) -> None:
    headers = {"Authorization": f"Bearer {served.member}"}
    statuses = [client.get("/titles/1", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    body = _problem(client.get("/titles/1", headers=headers), 429)
    assert "rate limit" in body["detail"]
    other = {"Authorization": f"Bearer {served.other}"}
    assert client.get("/titles/1", headers=other).status_code == 200  # limits are per token
    assert client.get("/healthz").status_code == 200  # operations routes are exempt


def test_a_query_parameter_on_a_route_that_reads_none_is_422_and_changes_nothing(served: Served) -> None:
    """``POST /models/{id}/promote?dry_run=1`` must not promote: a parameter no route reads is refused."""
    from openflix.registry.versions import production_version
    from openflix.services.training import train_version

    with served.platform.engine.connect() as conn:
        before = production_version(conn)
    other = train_version(served.platform.engine, served.platform.artifacts, "popularity").id
    assert other != before
    for method, path, token in (
        ("post", f"/models/{other}/promote?dry_run=1", served.admin),
        ("get", "/titles/1?fields=name", served.member),
        ("get", f"/members/{served.member_id}?page=2", served.operator),
        ("get", "/jobs/nope?wait=1", served.operator),
    ):
        body = _problem(getattr(served, method)(path, token), 422)
        name, why = path.split("?")[1].split("=")[0], "not a parameter of this request; it takes none"
        assert body["detail"] == f"the request does not match the schema: query.{name}: {why}", body
        assert body["errors"] == {"query": {name: [why]}}
    with served.platform.engine.connect() as conn:
        assert production_version(conn) == before  # nothing promoted
    assert served.get("/titles/1", served.member).status_code == 200  # without it: answered
    for path in (
        "/?member=1",
        "/openapi.json?v=2",
        "/metrics?name[]=openflix_http_requests_total",
        "/healthz?_=1",
        "/readyz?verbose=1",
    ):
        with served.client.get(path) as r:  # pages, the document and scrapers
            assert r.status_code == 200, path


def test_no_model_in_production_is_503_not_500(tmp_path: Path) -> None:
    from openflix.store.db import upgrade
    from openflix.store.tokens import create_token
    from tests.api.conftest import make_settings

    platform = Platform(make_settings(f"sqlite:///{tmp_path / 'empty.db'}", str(tmp_path / "a")))
    upgrade(platform.engine)
    with platform.engine.begin() as conn:
        _, token = create_token(conn, "operator")
    client = create_app(platform=platform).test_client()
    r = client.get("/titles/1/similar", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (404, 503)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["model"].startswith("error")
    platform.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables: a SQLite file, or a schema of its own in the PostgreSQL
    test database (the other tests' schema is left alone)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import sqlalchemy as sa

    from tests.conftest import PG_URL, service_missing

    schema = f"unmigrated_{os.getpid()}"
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        service_missing("PostgreSQL", PG_URL, exc)
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()


def test_a_database_this_version_cannot_use_is_a_503_naming_the_command(
    empty_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker started by hand on a database never migrated (or migrated by an older release) boots,
    says what to run, and answers 503 saying it — not a traceback at boot or a 500 per request."""
    import gc

    from sqlalchemy import text

    from openflix.api import prepare
    from openflix.store.db import head_revision, upgrade
    from tests.api.conftest import make_settings

    platform = Platform(make_settings(empty_database, str(tmp_path / "a")))
    app = create_app(platform=platform)
    client = app.test_client()
    fix = f"this version needs revision {head_revision()}: run `openflix db upgrade`"
    try:
        with caplog.at_level("WARNING", logger="openflix.api"):
            prepare(app)
        assert f"not warmed up: the database schema is not migrated; {fix}" in caplog.text
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"] == f"error: the database schema is not migrated; {fix}"
        body = _problem(client.get("/titles", headers={"Authorization": "Bearer any"}), 503)
        assert body["detail"] == f"the database schema is not migrated; {fix}"
        upgrade(platform.engine, "0005")
        checks = client.get("/readyz").get_json()["checks"]
        assert checks["database"] == f"error: the database schema is at revision 0005; {fix}"
        upgrade(platform.engine)
        assert client.get("/readyz").get_json()["checks"]["database"] == "ok"
        with platform.engine.begin() as conn:  # a newer release migrated it: this one keeps serving
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        assert client.get("/readyz").get_json()["checks"]["database"] == "ok"
        _problem(client.get("/titles", headers={"Authorization": "Bearer any"}), 401)  # usable again
    finally:
        gc.unfreeze()
        platform.close()
