"""Background jobs: import, train, retrain, evaluate, fill."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from openflix.api import schemas as s
from openflix.api.auth import auth, require
from openflix.api.context import platform
from openflix.jobs.tasks import promotes
from openflix.store.tokens import Role

bp = APIBlueprint("jobs", __name__, tag="Jobs")


@bp.post("/jobs")
@bp.auth_required(auth)
@bp.input(s.JobIn, arg_name="body")
@bp.output(s.JobOut, status_code=202)
@bp.doc(responses={503: "The queue cannot be reached"})
def submit(body: dict[str, Any]) -> dict[str, Any]:
    """Queue a job; poll ``GET /jobs/{id}`` for its status and result (operator; admin for a job that
    puts its model in production: ``retrain``, or ``train`` with ``promote``)."""
    require(Role.OPERATOR)
    if promotes(body["kind"], body["params"]):  # as promoting a version does
        require(Role.ADMIN, f"a {body['kind']} job that puts its model in production")
    return platform().jobs.submit(body["kind"], body["params"]).__dict__


@bp.get("/jobs/<job_id>")
@bp.auth_required(auth)
@bp.output(s.JobOut)
@bp.doc(responses={404: "Unknown job"})
def status(job_id: str) -> dict[str, Any]:
    """A job's status, attempts, and result or error (operator)."""
    require(Role.OPERATOR)
    return platform().jobs.get(job_id).__dict__
