"""The model registry: versions, promotion and rollback, A/B tests."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from openflix.api import schemas as s
from openflix.api.auth import auth, require
from openflix.api.context import platform
from openflix.errors import NotFoundError
from openflix.registry.ab import cell_counts, create_test, get_test, stop_test
from openflix.registry.versions import get_version, list_versions, promote, rollback
from openflix.store.db import translating
from openflix.store.tokens import Role

bp = APIBlueprint("models", __name__, tag="Models")

MAX_VERSION = 2**31 - 1
"""Version ids are 32-bit INTEGER in the store: PostgreSQL refuses to compare with a larger one."""


def _stored(version_id: int) -> int:
    if version_id > MAX_VERSION:
        raise NotFoundError(f"model version {version_id} does not exist")
    return version_id


@bp.get("/models")
@bp.auth_required(auth)
@bp.output(s.VersionsOut)
def versions() -> dict[str, Any]:
    """Registered model versions, newest first (operator)."""
    require(Role.OPERATOR)
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        return {"items": [v.__dict__ for v in list_versions(conn)]}


@bp.get("/models/<int:version_id>")
@bp.auth_required(auth)
@bp.output(s.VersionOut)
@bp.doc(responses={404: "Unknown version"})
def version(version_id: int) -> dict[str, Any]:
    """One version: its metrics, parameters, data fingerprint and artifact (operator)."""
    require(Role.OPERATOR)
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        return get_version(conn, _stored(version_id)).__dict__


@bp.post("/models/<int:version_id>/promote")
@bp.auth_required(auth)
@bp.output(s.VersionOut)
@bp.doc(responses={404: "Unknown version"})
def promote_version(version_id: int) -> dict[str, Any]:
    """Put a version in production; servers switch within seconds, without a restart (admin)."""
    require(Role.ADMIN)
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        return promote(conn, _stored(version_id)).__dict__


@bp.post("/models/rollback")
@bp.auth_required(auth)
@bp.output(s.VersionOut)
@bp.doc(responses={409: "Nothing to roll back to"})
def rollback_version() -> dict[str, Any]:
    """Put back the version that was in production before the current one (admin)."""
    require(Role.ADMIN)
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        return rollback(conn).__dict__


def _test_out(conn: Any, name: str) -> dict[str, Any]:
    test = get_test(conn, name)
    counts = cell_counts(conn, name)
    return {
        "name": test.name,
        "active": test.active,
        "created_at": test.created_at,
        "cells": [{**c.__dict__, **counts[c.name]} for c in test.cells],
    }


@bp.post("/ab-tests")
@bp.auth_required(auth)
@bp.input(s.TestIn, arg_name="body")
@bp.output(s.TestOut, status_code=201)
@bp.doc(responses={404: "Unknown version", 409: "A test runs already or the name is taken"})
def start_test(body: dict[str, Any]) -> dict[str, Any]:
    """Start an A/B test: members split by hash of (test, member) into cells, each a version (admin)."""
    require(Role.ADMIN)
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        create_test(conn, body["name"], body["cells"])
        return _test_out(conn, body["name"])


@bp.get("/ab-tests/<name>")
@bp.auth_required(auth)
@bp.output(s.TestOut)
@bp.doc(responses={404: "Unknown test"})
def test(name: str) -> dict[str, Any]:
    """A test with, per cell, its members and plays started from a recommendation (operator)."""
    require(Role.OPERATOR)
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        return _test_out(conn, name)


@bp.post("/ab-tests/<name>/stop")
@bp.auth_required(auth)
@bp.output(s.TestOut)
@bp.doc(responses={404: "Unknown test"})
def stop(name: str) -> dict[str, Any]:
    """Stop a test: every member goes back to the production version (admin)."""
    require(Role.ADMIN)
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        stop_test(conn, name)
        return _test_out(conn, name)
