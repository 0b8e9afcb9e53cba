"""Jobs: in-process (the embedded default) and on RQ with a real worker process on the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from openflix.api import create_app
from openflix.errors import ConfigError
from openflix.jobs.runner import InProcessRunner, RQRunner
from openflix.jobs.schedule import next_run
from openflix.recs.data import Interactions
from openflix.registry.versions import list_versions
from openflix.services.catalog import import_interactions
from openflix.services.platform import Platform
from openflix.store.db import upgrade
from openflix.store.schema import JobRecord
from openflix.store.tokens import create_token
from tests.api.conftest import make_settings
from tests.conftest import fresh_postgres, fresh_redis, write_ratings_csv


def test_in_process_jobs_import_train_and_report_through_the_api(
    database_url: str, tmp_path: Path, store_data: Interactions
) -> None:
    platform = Platform(make_settings(database_url, str(tmp_path / "artifacts")))
    upgrade(platform.engine)
    import_interactions(platform.engine, store_data.subset(store_data.users < 40).compact(), ["us"])
    runner = platform.jobs
    assert isinstance(runner, InProcessRunner)
    with platform.engine.begin() as conn:
        _, token = create_token(conn, "operator")
        _, admin = create_token(conn, "admin")
    client = create_app(platform=platform).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    csv = write_ratings_csv(store_data, tmp_path / "ratings.csv")

    r = client.post("/jobs", json={"kind": "import", "params": {"path": str(csv)}}, headers=headers)
    assert r.status_code == 202 and r.get_json()["status"] in ("queued", "started", "finished")
    done = runner.wait(r.get_json()["id"], timeout=120)
    assert done.status == "finished" and done.result is not None and done.result["members"] > 0

    promoting = {"Authorization": f"Bearer {admin}"}  # a job that promotes needs an admin, as promoting does
    r = client.post("/jobs", json={"kind": "train", "params": {"promote": True}}, headers=promoting)
    done = runner.wait(r.get_json()["id"], timeout=120)
    assert done.status == "finished" and done.result is not None and done.result["promoted"] is True
    body = client.get(f"/jobs/{done.id}", headers=headers).get_json()
    assert body["status"] == "finished" and body["attempts"] == 1 and body["result"]["version"] >= 1
    with platform.engine.connect() as conn:
        assert [v.id for v in list_versions(conn)] == [done.result["version"]]
    platform.close()


def test_a_job_with_bad_input_fails_for_good_with_the_reason(tmp_path: Path) -> None:
    platform = Platform(make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "a")))
    upgrade(platform.engine)
    runner = platform.jobs
    assert isinstance(runner, InProcessRunner)
    job = runner.submit("import", {"path": str(tmp_path / "missing.csv")})
    done = runner.wait(job.id, timeout=60)
    assert done.status == "failed" and done.attempts == 1 and "missing.csv" in (done.error or "")
    client = create_app(platform=platform).test_client()
    with platform.engine.begin() as conn:
        _, token = create_token(conn, "operator")
        _, admin = create_token(conn, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/jobs/nope", headers=headers).status_code == 404
    r = client.post("/jobs", json={"kind": "dance"}, headers=headers)
    assert r.status_code == 422 and "kind" in r.get_json()["detail"]
    # parameters a run would refuse or ignore are refused when submitted, and nothing is recorded
    for body, message in (
        ({"kind": "train", "params": {"model": "nope"}}, "params.model: unknown model 'nope'"),
        ({"kind": "train", "params": {"promote": "yes"}}, "params.promote: expected true or false"),
        ({"kind": "evaluate", "params": {"split": "sideways"}}, "params.split: expected temporal or random"),
        (
            {"kind": "evaluate", "params": {"model": "popularity"}},
            "params.model: not a parameter of the evaluate job",
        ),
        ({"kind": "import", "params": {}}, "params.path: an import job needs"),
        ({"kind": "evaluate", "params": {"models": [["x"]]}}, "params.models: expected model names"),
        (
            {"kind": "train", "params": {"model": "als", "params": {"factors": -5}}},
            "params.params.factors: expected a whole number >= 0, got -5",
        ),
        ({"kind": "fill", "params": {"site": ""}}, "params.site: site '' does not exist"),  # it filled all
        ({"kind": "fill", "params": {"day": ""}}, "params.day: expected a date YYYY-MM-DD, got ''"),
        (
            {"kind": "train", "params": {"model": "sequential", "params": {"target_decay": 1.5}}},
            "params.params.target_decay: expected a number in (0, 1], got 1.5",
        ),
        (
            {"kind": "retrain", "params": {"params": {"l2": 1}}},  # the default model (sequential) has no l2
            "params.params.l2: not a hyperparameter of sequential (expected one of alpha,",
        ),
    ):
        who = admin if body["kind"] == "retrain" else token  # a retrain promotes: an admin's
        r = client.post("/jobs", json=body, headers={"Authorization": f"Bearer {who}"})
        assert r.status_code == 422 and message in r.get_json()["detail"], (body, r.get_json())
    with platform.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(JobRecord)) == 1  # the import above only
    platform.close()


def test_rq_jobs_run_on_a_worker_process(tmp_path: Path, store_data: Interactions) -> None:
    db = fresh_postgres()
    redis_url = fresh_redis()
    settings = make_settings(db, str(tmp_path / "artifacts"), redis_url=redis_url)
    platform = Platform(settings)
    upgrade(platform.engine)
    import_interactions(platform.engine, store_data, ["us"])
    runner = platform.jobs
    assert isinstance(runner, RQRunner)
    job = runner.submit("train", {"promote": True})
    assert runner.get(job.id).status == "queued"
    env = {
        **os.environ,
        "OPENFLIX_DATABASE_URL": db,
        "OPENFLIX_REDIS_URL": redis_url,
        "OPENFLIX_ARTIFACTS": str(tmp_path / "artifacts"),
        "OPENFLIX_RETRAIN_AT": "off",
    }
    cli = [sys.executable, "-m", "openflix", "worker", "--burst"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    info = runner.get(job.id)
    assert info.status == "finished", (info, done.stderr[-2000:])
    assert info.result is not None and info.result["promoted"] is True
    with platform.engine.connect() as conn:
        assert [v.in_production for v in list_versions(conn)] == [True]
    platform.close()


def test_worker_without_redis_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "OPENFLIX_REDIS_URL": "", "OPENFLIX_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "openflix", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "OPENFLIX_REDIS_URL" in done.stderr and "Traceback" not in done.stderr


def test_nightly_schedule_runs_at_the_next_configured_time() -> None:
    at = next_run(datetime(2026, 5, 1, 2, 59, tzinfo=UTC), "03:00")
    assert at == datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    assert next_run(datetime(2026, 5, 1, 3, 0, tzinfo=UTC), "03:00") == datetime(2026, 5, 2, 3, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="OPENFLIX_RETRAIN_AT"):
        next_run(datetime(2026, 5, 1, tzinfo=UTC), "25:00")


def test_a_scheduled_job_submitted_twice_runs_once(tmp_path: Path) -> None:
    platform = Platform(make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "a")))
    upgrade(platform.engine)
    first = platform.jobs.submit("evaluate", {"models": ["popularity"]}, job_id="nightly-2026-05-01")
    second = platform.jobs.submit("evaluate", {"models": ["popularity"]}, job_id="nightly-2026-05-01")
    assert first.id == second.id == "nightly-2026-05-01"
    time.sleep(0.1)
    platform.close()
