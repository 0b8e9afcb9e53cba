"""Token authentication and the role rules, on every member-scoped route."""

from __future__ import annotations

import pytest

from tests.api.conftest import Served

MEMBER_ROUTES = ["/members/{id}", "/members/{id}/history", "/members/{id}/home"]


@pytest.mark.parametrize("route", MEMBER_ROUTES)
def test_member_token_reads_its_own_member(served: Served, route: str) -> None:
    r = served.get(route.format(id=served.member_id), served.member)
    assert r.status_code == 200


@pytest.mark.parametrize("route", MEMBER_ROUTES)
def test_member_token_never_reads_another_member(served: Served, route: str) -> None:
    r = served.get(route.format(id=served.other_id), served.member)
    assert r.status_code == 403
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 403 and str(served.other_id) in body["detail"]
    assert "rows" not in body and "events" not in body


@pytest.mark.parametrize("route", MEMBER_ROUTES)
def test_operator_reads_any_member(served: Served, route: str) -> None:
    assert served.get(route.format(id=served.other_id), served.operator).status_code == 200


@pytest.mark.parametrize("route", [*MEMBER_ROUTES, "/titles", "/models", "/jobs/x"])
def test_no_token_or_bad_token_is_401(served: Served, route: str) -> None:
    path = route.format(id=served.member_id)
    for token in (None, "ofx_not-a-token"):
        r = served.get(path, token)
        assert r.status_code == 401, (path, token)
        assert r.mimetype == "application/problem+json"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_member_token_cannot_write_events_for_another_member(served: Served) -> None:
    event = {"member_id": served.other_id, "title_id": 1, "kind": "play", "position_s": 10, "duration_s": 100}
    r = served.post("/events", served.member, json=event)
    assert r.status_code == 403
    r = served.post("/events/bulk", served.member, json={"events": [event]})
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("post", "/models/1/promote", "admin"),
        ("post", "/models/rollback", "admin"),
        ("post", "/ab-tests", "admin"),
        ("get", "/models", "operator"),
        ("post", "/jobs", "operator"),
        ("put", "/titles/1/availability", "operator"),
    ],
)
def test_writes_need_a_role_that_allows_them(served: Served, method: str, path: str, needs: str) -> None:
    body = (
        {"regions": ["us"]} if "availability" in path else {"kind": "evaluate"} if path == "/jobs" else None
    )
    if path == "/ab-tests":
        body = {"name": "t", "cells": [{"name": "a", "version": 1}, {"name": "b", "version": 1}]}
    tokens = [served.member] if needs == "operator" else [served.member, served.operator]
    for token in tokens:
        r = getattr(served, method)(path, token, json=body)
        assert r.status_code == 403, (path, token)
        assert f"needs an {needs} token" in r.get_json()["detail"]  # it said "a operator", "a admin"


@pytest.mark.parametrize("job", [{"kind": "retrain"}, {"kind": "train", "params": {"promote": True}}])
def test_a_job_that_promotes_its_model_needs_an_admin_as_promoting_does(served: Served, job: dict) -> None:
    params = {**job.get("params", {}), "model": "no-such-model"}  # past the role check: a 422, nothing runs
    before = served.get("/models", served.operator).get_json()
    r = served.post("/jobs", served.operator, json={**job, "params": params})
    assert r.status_code == 403
    detail = r.get_json()["detail"]
    assert "puts its model in production needs an admin token" in detail and "an operator token" in detail
    r = served.post("/jobs", served.admin, json={**job, "params": params})
    assert r.status_code == 422 and "params.model" in r.get_data(as_text=True)
    r = served.post("/jobs", served.operator, json={"kind": "train", "params": {"model": "no-such-model"}})
    assert r.status_code == 422  # training without promoting stays an operator's
    assert served.get("/models", served.operator).get_json() == before


def test_revoked_token_stops_working(served: Served) -> None:
    from openflix.api import auth
    from openflix.store.tokens import create_token, revoke_token

    with served.platform.engine.begin() as conn:
        token_id, secret = create_token(conn, "operator")
    assert served.get("/titles", secret).status_code == 200
    with served.platform.engine.begin() as conn:
        revoke_token(conn, token_id)
    auth._cache.clear()  # the per-process cache holds a token for up to CACHE_SECONDS
    assert served.get("/titles", secret).status_code == 401


def test_tokens_are_stored_hashed(served: Served) -> None:
    from sqlalchemy import select

    from openflix.store.schema import ApiToken

    with served.platform.engine.connect() as conn:
        stored = set(conn.scalars(select(ApiToken.token_hash)))
    assert served.member not in stored and all(len(h) == 64 for h in stored)


def test_whoami_names_the_tokens_role_and_member(served: Served) -> None:
    from sqlalchemy import select

    from openflix.store.schema import ApiToken
    from openflix.store.tokens import digest

    with served.platform.engine.connect() as conn:
        token_id = conn.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest(served.member)))
    body = served.get("/whoami", served.member).get_json()
    assert body == {"token_id": token_id, "role": "member", "member_id": served.member_id}
    assert served.get("/whoami", served.admin).get_json()["role"] == "admin"
    assert served.get("/whoami").status_code == 401
