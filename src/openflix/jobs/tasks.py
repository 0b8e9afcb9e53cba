"""The job functions a worker runs, by reference: each reads its record, calls a use case, stores the result.

Every job has a row in the ``jobs`` table (its status, attempts, result or
error), written by the job itself, so ``GET /jobs/{id}`` answers the same
whether the job ran on an RQ worker or in-process.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from openflix import timeofday
from openflix.errors import DataError, NotFoundError, OpenflixError
from openflix.services.platform import Platform
from openflix.store.db import translating
from openflix.store.schema import JobRecord

__all__ = ["KINDS", "PARAMS", "JobStatus", "check_params", "promotes", "run_job"]


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


def _import(platform: Platform, params: dict[str, Any]) -> dict[str, Any]:
    from openflix.services.catalog import import_interactions
    from openflix.services.personalization import load_dataset

    path = params.get("path")
    if not path:
        raise DataError("an import job needs params.path: the dataset file or folder")
    data = load_dataset(Path(path), fmt=str(params.get("format", "auto")))
    report = import_interactions(platform.engine, data, platform.settings.region_list)
    return dict(report.__dict__)


def _train(platform: Platform, params: dict[str, Any]) -> dict[str, Any]:
    from openflix.services.training import train_version

    info = train_version(
        platform.engine,
        platform.artifacts,
        str(params.get("model", platform.settings.model)),
        params=dict(params.get("params", {})),
        do_promote=bool(params.get("promote", False)),
    )
    return {"version": info.id, "metrics": info.metrics, "promoted": info.in_production}


def _retrain(platform: Platform, params: dict[str, Any]) -> dict[str, Any]:
    return _train(platform, {**params, "promote": True})


def _evaluate(platform: Platform, params: dict[str, Any]) -> dict[str, Any]:
    from openflix.services.catalog import interactions_from_store
    from openflix.services.personalization import evaluate_models

    names = list(params.get("models", ["popularity", platform.settings.model]))
    data = interactions_from_store(platform.engine)
    results = evaluate_models(data, names, kind=str(params.get("split", "temporal")), tune=False)
    return {r.model: r.metrics for r in results}


def _fill(platform: Platform, params: dict[str, Any]) -> dict[str, Any]:
    from openflix.services.fill import fill_order, fill_sites

    s = platform.settings
    sites = [str(params["site"])] if "site" in params else fill_order(platform.engine)
    day = _fill_day(params)
    reports = list(fill_sites(platform.engine, sites, title_gb=s.title_gb, stale_s=s.health_stale_s, day=day))
    return {"sites": [r.__dict__ for r in reports]}


PARAMS: dict[str, dict[str, type]] = {
    "import": {"path": str, "format": str},
    "train": {"model": str, "params": dict, "promote": bool},
    "retrain": {"model": str, "params": dict},
    "evaluate": {"models": list, "split": str},
    "fill": {"site": str, "day": str},
}
"""Each job kind's parameters and their JSON types (all optional but an import's ``path``)."""


def check_params(platform: Platform, kind: str, params: dict[str, Any]) -> None:
    """Refuse, before a job is recorded, parameters its run would refuse or silently ignore.

    Unknown or mistyped parameters, unknown models or splits, a fill of a site
    that does not exist or of a malformed day: :class:`DataError` naming
    ``params.<field>``, what was expected and what came.  What can only be
    known where the job runs (an import's file) is left to the run.
    """
    from openflix.recs.models import MODELS, check_hyperparameters

    known = PARAMS[kind]
    for key, value in params.items():
        if key not in known:
            raise DataError(
                f"params.{key}: not a parameter of the {kind} job (expected {', '.join(known) or 'none'})"
            )
        if not isinstance(value, known[key]):
            raise DataError(
                f"params.{key}: expected {_JSON_TYPE[known[key]]}, got {type(value).__name__}: {value!r}"
            )
    if kind == "import" and not params.get("path"):
        raise DataError("params.path: an import job needs the dataset file or folder")
    models = [params["model"]] if "model" in params else list(params.get("models", []))
    for name in models:
        if not isinstance(name, str):
            raise DataError(f"params.models: expected model names (strings), got {name!r}")
        if name not in MODELS:
            raise DataError(
                f"params.model: unknown model {name!r} (expected one of {', '.join(sorted(MODELS))})"
            )
    if isinstance(params.get("params"), dict):  # the model's hyperparameters, checked as training would
        check_hyperparameters(
            str(params.get("model") or platform.settings.model), params["params"], "params.params."
        )
    if params.get("split", "temporal") not in ("temporal", "random"):
        raise DataError(f"params.split: expected temporal or random, got {params['split']!r}")
    if kind == "fill":
        _fill_day(params)
        if "site" in params:  # absent: every site; "" is no site's name (as on the command line)
            from openflix.store.schema import Site

            with translating(platform.engine), platform.engine.connect() as conn:
                if conn.scalar(select(Site.id).where(Site.name == params["site"])) is None:
                    raise DataError(f"params.site: site {params['site']!r} does not exist")


_JSON_TYPE = {str: "a string", dict: "an object", bool: "true or false", list: "a list"}


def _fill_day(params: dict[str, Any]) -> date | None:
    """The fill's ``day`` parameter, or ``None`` when absent (the data's today); "" is no day, as on
    the command line."""
    try:
        return timeofday.day(params["day"]) if "day" in params else None
    except ValueError as exc:
        raise DataError(f"params.day: {exc}") from None


KINDS: dict[str, Callable[[Platform, dict[str, Any]], dict[str, Any]]] = {
    "import": _import,
    "train": _train,
    "retrain": _retrain,
    "evaluate": _evaluate,
    "fill": _fill,
}
"""Job kinds and the use case each runs."""


def promotes(kind: str, params: dict[str, Any]) -> bool:
    """Whether the job puts the model it trains in production (``retrain``, or ``train`` with
    ``promote``): what promoting a version does, so it needs the same role."""
    return kind == "retrain" or (kind == "train" and params.get("promote") is True)


def _set(engine: Engine, job_id: str, **values: Any) -> None:
    with translating(engine), engine.begin() as conn:
        conn.execute(update(JobRecord).where(JobRecord.id == job_id).values(**values))


def run_job(job_id: str, platform: Platform | None = None) -> dict[str, Any]:
    """Run the job recorded as ``job_id``.

    Bad input (:class:`DataError`, :class:`NotFoundError`) fails the job for
    good; any other error is recorded and raised again, so the job is retried.
    """
    platform = platform or Platform()
    engine = platform.engine
    with translating(engine), engine.begin() as conn:
        row = conn.execute(select(JobRecord.__table__).where(JobRecord.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"job {job_id} does not exist")
        kind, params, attempts = row.kind, dict(row.params), row.attempts
    _set(
        engine,
        job_id,
        status=JobStatus.STARTED.value,
        attempts=attempts + 1,
        started_at=int(time.time()),
        error=None,
    )
    try:
        result = KINDS[kind](platform, params)
    except (DataError, NotFoundError) as exc:  # the input is wrong: retrying cannot help
        result = {"retried": False, "reason": "bad input"}
        _set(
            engine,
            job_id,
            status=JobStatus.FAILED.value,
            error=str(exc),
            result=result,
            ended_at=int(time.time()),
        )
        return result
    except OpenflixError as exc:
        _set(engine, job_id, status=JobStatus.FAILED.value, error=str(exc), ended_at=int(time.time()))
        raise
    except Exception as exc:
        _set(
            engine,
            job_id,
            status=JobStatus.FAILED.value,
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
            ended_at=int(time.time()),
        )
        raise
    _set(engine, job_id, status=JobStatus.FINISHED.value, result=result, ended_at=int(time.time()))
    return result
