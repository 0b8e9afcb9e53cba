"""``openflix db|tokens|models|serve|worker``: the platform from the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from openflix.cli.params import CATALOG_ID, ROW_ID
from openflix.cli.recs import data_options, err, out, read_data
from openflix.errors import ConfigError
from openflix.services.platform import Platform
from openflix.store.db import head_revision, translating, upgrade

__all__ = ["db", "models", "serve", "tokens", "worker"]


def _platform() -> Platform:
    return Platform()


@click.group()
def db() -> None:
    """The database: migrate it, import datasets into it."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database (OPENFLIX_DATABASE_URL) to the newest schema."""
    p = _platform()
    upgrade(p.engine)
    out.print(f"database {p.engine.url.render_as_string(hide_password=True)} at revision {head_revision()}")


@db.command("import")
@data_options(required=True)
def db_import(data_path: Path, fmt: str, sep: str | None, columns: str | None) -> None:
    """Import a dataset's titles, members and ratings (one transaction: all or nothing)."""
    from openflix.services.catalog import import_interactions

    p = _platform()
    upgrade(p.engine)
    data = read_data(data_path, fmt, sep, columns)
    with err.status("importing") as status:
        report = import_interactions(p.engine, data, p.settings.region_list, progress=status.update)
    out.print(
        f"imported {report.titles:,} titles, {report.members:,} members, {report.events:,} events "
        f"({report.skipped_events:,} already there) in {report.seconds:.1f} s"
    )


@click.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--role", type=click.Choice(["member", "operator", "admin"]), required=True)
@click.option(
    "--member", "member_id", type=CATALOG_ID, default=None, help="The member a member token belongs to."
)
@click.option("--name", default="", help="A note to recognize the token by.")
def tokens_create(role: str, member_id: int | None, name: str) -> None:
    """Create a token and print its secret (shown once; only its digest is stored)."""
    from openflix.store.tokens import create_token

    p = _platform()
    upgrade(p.engine)
    with translating(p.engine), p.engine.begin() as conn:
        token_id, secret = create_token(conn, role, member_id, name)
    err.print(f"token {token_id} ({role}{f', member {member_id}' if member_id is not None else ''}):")
    click.echo(secret)


@tokens.command("revoke")
@click.argument("token_id", type=ROW_ID)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    from openflix.store.tokens import revoke_token

    p = _platform()
    with translating(p.engine), p.engine.begin() as conn:
        revoke_token(conn, token_id)
    out.print(f"token {token_id} revoked")


@click.group()
def models() -> None:
    """The model registry: train, list, promote, roll back."""


@models.command("train")
@click.option("--model", "name", default=None, help="Model to train (default: OPENFLIX_MODEL).")
@click.option("--promote/--no-promote", default=False, help="Put the new version in production.")
def models_train(name: str | None, promote: bool) -> None:
    """Train on every event of the store and register a new version."""
    from openflix.services.training import train_version

    p = _platform()
    with err.status("training") as status:
        info = train_version(
            p.engine, p.artifacts, name or p.settings.model, do_promote=promote, progress=status.update
        )
    out.print(
        f"version {info.id}: {info.model}, NDCG@10 {info.metrics.get('ndcg@10', float('nan')):.4f}"
        f"{' — in production' if info.in_production else ''}"
    )


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_list(as_json: bool) -> None:
    """Registered versions, newest first."""
    from openflix.registry.versions import list_versions

    p = _platform()
    with translating(p.engine), p.engine.connect() as conn:
        versions = list_versions(conn)
    if as_json:
        click.echo(json.dumps([v.__dict__ for v in versions]))
        return
    for v in versions:
        mark = "*" if v.in_production else " "
        out.print(
            f"{mark} {v.id:>4}  {v.model:<12} NDCG@10 {v.metrics.get('ndcg@10', float('nan')):.4f}  "
            f"{v.n_events:,} events  {v.artifact}"
        )


@models.command("promote")
@click.argument("version_id", type=ROW_ID)
def models_promote(version_id: int) -> None:
    """Put a version in production (servers switch within seconds)."""
    from openflix.registry.versions import promote

    p = _platform()
    with translating(p.engine), p.engine.begin() as conn:
        info = promote(conn, version_id)
    out.print(f"version {info.id} is in production")


@models.command("rollback")
def models_rollback() -> None:
    """Put back the version that was in production before the current one."""
    from openflix.registry.versions import rollback

    p = _platform()
    with translating(p.engine), p.engine.begin() as conn:
        info = rollback(conn)
    out.print(f"rolled back: version {info.id} is in production")


@click.command()
@click.option("--bind", default=None, help="host:port (default 127.0.0.1:8000, or OPENFLIX_BIND).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Gunicorn workers (default 2, or OPENFLIX_WORKERS).",
)
def serve(bind: str | None, workers: int | None) -> None:
    """Serve the API with Gunicorn (the config is openflix/gunicorn_conf.py)."""
    from openflix.api import create_app
    from openflix.jobs.schedule import retrain_time

    _check_bind(bind or os.environ.get("OPENFLIX_BIND") or "")
    for variable in ("OPENFLIX_WORKERS", "OPENFLIX_THREADS"):  # read by Gunicorn's config after the exec
        raw = os.environ.get(variable, "").strip()
        if raw and not (raw.isdigit() and 1 <= int(raw) <= 256):
            raise ConfigError(f"{variable}={raw!r}: expected a whole number in 1..256; fix or unset it")
    p = _platform()
    upgrade(p.engine)
    create_app(platform=p)  # each worker's checks of the settings, said once here, not by workers failing
    retrain_time(p.settings.retrain_at)
    p.close()
    exec_gunicorn(bind, workers)


def _check_bind(bind: str) -> None:
    """``host:port`` with a port Gunicorn can bind (``unix:PATH`` and ``fd://N`` pass as they are)."""
    if not bind or bind.startswith(("unix:", "fd://")):
        return
    _, colon, port = bind.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(
            f"expected HOST:PORT with a port in 0..65535, got {bind!r}", param_hint="--bind"
        )


def gunicorn_argv() -> list[str]:
    """The command that serves the API with Gunicorn and its config ``openflix.gunicorn_conf``."""
    conf = "python:openflix.gunicorn_conf"
    return [sys.executable, "-m", "gunicorn", "--config", conf, "openflix.api.wsgi:app"]


def exec_gunicorn(bind: str | None = None, workers: int | None = None) -> None:
    """Replace this process with Gunicorn serving the API."""
    if bind:
        os.environ["OPENFLIX_BIND"] = bind
    if workers:
        os.environ["OPENFLIX_WORKERS"] = str(workers)
    sys.stdout.flush()
    os.execv(sys.executable, gunicorn_argv())


@click.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run jobs from the Redis queue (needs OPENFLIX_REDIS_URL)."""
    from openflix.jobs.worker import run_worker

    run_worker(_platform(), burst=burst)
