"""The model registry through the API: versions, promotion and rollback without a restart, A/B cells."""

from __future__ import annotations

import time

import numpy as np
import pytest

from openflix.errors import ConflictError
from openflix.registry.versions import rollback
from openflix.services.training import train_version
from tests.api.conftest import Served


def _served_version(
    served: Served, token: str, member_id: int, until: int, timeout: float = 20.0
) -> list[int]:
    """Versions answering the home page, request after request, until ``until`` answers; every one 200."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = served.get(f"/members/{member_id}/home", token)
        assert r.status_code == 200, r.get_json()
        seen.append(r.get_json()["version"])
        if seen[-1] == until:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"version {until} never served; saw {sorted(set(seen))}")


def test_versions_record_metrics_params_fingerprint(served: Served) -> None:
    items = served.get("/models", served.operator).get_json()["items"]
    v = items[-1]
    assert v["model"] == "sequential" and v["in_production"] is True
    assert 0 < v["metrics"]["ndcg@10"] <= 1 and v["n_events"] > 4000 and len(v["data_fingerprint"]) == 64
    assert v["params"] and v["created_at"] > 1_700_000_000
    assert served.get(f"/models/{v['id']}", served.operator).get_json() == v
    assert served.get("/models/99999", served.operator).status_code == 404


def test_promote_and_rollback_switch_serving_without_failed_requests(served: Served) -> None:
    first = served.get(f"/members/{served.member_id}/home", served.member).get_json()["version"]
    new = train_version(served.platform.engine, served.platform.artifacts, "ease")
    r = served.post(f"/models/{new.id}/promote", served.admin)
    assert r.status_code == 200 and r.get_json()["in_production"] is True
    seen = _served_version(served, served.member, served.member_id, new.id)
    assert set(seen) <= {first, new.id}
    listed = {v["id"]: v["in_production"] for v in served.get("/models", served.operator).get_json()["items"]}
    assert listed[new.id] is True and listed[first] is False

    r = served.post("/models/rollback", served.admin)
    assert r.status_code == 200 and r.get_json()["id"] == first
    seen = _served_version(served, served.member, served.member_id, first)
    assert set(seen) <= {first, new.id}


def test_rollback_with_nothing_before_is_409(served: Served) -> None:
    from sqlalchemy import create_engine

    from openflix.store.db import upgrade

    engine = create_engine("sqlite://")
    upgrade(engine)
    with engine.begin() as conn, pytest.raises(ConflictError, match="nothing to roll back"):
        rollback(conn)
    engine.dispose()


def test_ab_test_splits_members_deterministically_and_counts_recommended_plays(served: Served) -> None:
    versions = [v["id"] for v in served.get("/models", served.operator).get_json()["items"]]
    a, b = versions[-1], versions[0] if versions[0] != versions[-1] else versions[-1]
    body = {
        "name": f"home-{served.backend}",
        "cells": [{"name": "control", "version": a}, {"name": "new", "version": b}],
    }
    r = served.post("/ab-tests", served.admin, json=body)
    assert r.status_code == 201, r.get_json()
    assert served.post("/ab-tests", served.admin, json={**body, "name": "second"}).status_code == 409
    served.platform.home.forget()
    try:
        cells = {}
        for member_id, token in ((served.member_id, served.member), (served.other_id, served.other)):
            pages = [served.get(f"/members/{member_id}/home", token).get_json() for _ in range(3)]
            assert len({p["cell"] for p in pages}) == 1  # the same cell every time
            cells[member_id] = pages[0]["cell"]
            version = {"control": a, "new": b}[pages[0]["cell"]]
            assert {p["version"] for p in pages} == {version}
        from openflix.registry.ab import assign, get_test

        with served.platform.engine.connect() as conn:
            test = get_test(conn, body["name"])
        split = assign(test, np.arange(10_000))
        assert abs(split.mean() - 0.5) < 0.03  # equal weights: about half the members in each cell
        assert (assign(test, np.arange(10_000)) == split).all()

        play = {
            "member_id": served.member_id,
            "title_id": 1,
            "kind": "play",
            "position_s": 1,
            "duration_s": 100,
            "source": "home:top-picks",
        }
        for i in range(3):
            r = served.post(
                "/events", served.member, json={**play, "idempotency_key": f"ab-{served.backend}-{i}"}
            )
            assert r.status_code == 201
        served.post(
            "/events",
            served.member,
            json={**play, "source": None, "idempotency_key": f"ab-x-{served.backend}"},
        )
        report = served.get(f"/ab-tests/{body['name']}", served.operator).get_json()
        counts = {c["name"]: (c["members"], c["plays"]) for c in report["cells"]}
        assert counts[cells[served.member_id]] == (1, 3)
    finally:
        served.post(f"/ab-tests/{body['name']}/stop", served.admin)
        served.platform.home.forget()
