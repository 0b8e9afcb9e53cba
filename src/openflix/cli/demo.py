"""``openflix demo``: the main job of ``make run`` — a working service on the bundled data.

Zero configuration: creates the SQLite database, imports MovieLens
latest-small (titles, members, ratings as viewing events), trains and
promotes the default model, creates a member token and an admin token, and
serves the API and the home page with Gunicorn on 127.0.0.1:8000 with
in-process jobs.  Each step is skipped when its result exists already, so a
second ``make run`` starts in seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
from sqlalchemy import func, select

from openflix.cli.recs import err, read_data
from openflix.services.platform import Platform
from openflix.store.db import translating, upgrade

__all__ = ["demo"]


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Dataset to import on first run (default: the bundled MovieLens latest-small).",
)
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="Where to serve.")
@click.option(
    "--serve/--no-serve", default=True, help="Start Gunicorn at the end (default) or stop after set-up."
)
def demo(data_path: Path | None, bind: str, serve: bool) -> None:
    """Set up the database, data, model and tokens, then serve the API and the home page."""
    from openflix.registry.versions import production_version
    from openflix.services.catalog import import_interactions
    from openflix.services.training import train_version
    from openflix.store.schema import Event, Member
    from openflix.store.tokens import create_token

    p = Platform()
    engine = p.engine
    upgrade(engine)
    click.echo(f"database: {engine.url.render_as_string(hide_password=True)}")
    with translating(engine), engine.connect() as conn:
        n_events = conn.scalar(select(func.count()).select_from(Event)) or 0
    if n_events == 0:
        data = read_data(data_path or p.settings.data, "auto", None, None)
        with err.status("importing") as status:
            report = import_interactions(engine, data, p.settings.region_list, progress=status.update)
        click.echo(
            f"imported {report.titles:,} titles, {report.members:,} members and "
            f"{report.events:,} ratings in {report.seconds:.1f} s"
        )
    else:
        click.echo(f"the store holds {n_events:,} events already")
    with translating(engine), engine.connect() as conn:
        current = production_version(conn)
    if current is None:
        with err.status(f"training {p.settings.model}") as status:
            info = train_version(
                engine, p.artifacts, p.settings.model, do_promote=True, progress=status.update
            )
        click.echo(
            f"trained {info.model} as version {info.id} (holdout NDCG@10 "
            f"{info.metrics.get('ndcg@10', float('nan')):.4f}) and put it in production"
        )
    else:
        click.echo(f"model version {current} is in production")
    _cdn(p)
    with translating(engine), engine.begin() as conn:
        member = conn.scalar(select(func.min(Member.id)))
        _, member_token = create_token(conn, "member", member, name="make run")
        _, admin_token = create_token(conn, "admin", name="make run")
    base = f"http://{bind}"
    click.echo(
        "\n".join(
            [
                "",
                f"home page of member {member}: {base}/?member={member}#token={member_token}",
                f"API docs: {base}/docs (spec: {base}/openapi.json)",
                f"metrics: {base}/metrics, readiness: {base}/readyz",
                f"member {member} token: {member_token}",
                f"admin token: {admin_token}",
                f'try: curl -H "Authorization: Bearer {member_token}" {base}/members/{member}/home',
                f'     curl -H "Authorization: Bearer {member_token}" "{base}/cdn/steer?ip=10.1.0.7&title=1"',
                "",
            ]
        )
    )
    if not serve:
        return
    from openflix.cli.platform import exec_gunicorn

    _start_fleet()
    exec_gunicorn(bind)


def _cdn(p: Platform) -> None:
    """Import the sample topology, have every appliance report once, and fill every site (first run only)."""
    from openflix.cdn.topology import load_file
    from openflix.services.fill import fill_order, fill_sites
    from openflix.services.openconnect import apply_pending, import_topology, report_fleet
    from openflix.store.schema import Fill, Site

    engine = p.engine
    with translating(engine), engine.connect() as conn:
        sites = conn.scalar(select(func.count()).select_from(Site)) or 0
        fills = conn.scalar(select(func.count()).select_from(Fill)) or 0
    if sites == 0:
        topo = load_file(p.settings.topology)
        import_topology(engine, topo)
        click.echo(f"CDN: imported {len(topo.sites)} sites and {len(topo.appliances)} appliances")
    report_fleet(p.engine, np.random.default_rng(p.settings.seed), stale_s=p.settings.health_stale_s)
    if fills == 0:
        t0 = time.perf_counter()
        with err.status("filling the CDN"):
            s = p.settings
            names = fill_order(engine)
            reports = list(fill_sites(engine, names, title_gb=s.title_gb, stale_s=s.health_stale_s))
            apply_pending(engine)  # the lab appliances fetch their manifests at once
        click.echo(
            f"CDN: filled {len(reports)} sites ({sum(r.copies for r in reports):,} copies) "
            f"in {time.perf_counter() - t0:.1f} s"
        )


def _start_fleet() -> None:
    """Keep the sample appliances reporting while the demo serves (a child that dies with it)."""
    import os
    import subprocess
    import sys

    parent = os.getpid()

    def die_with_parent() -> None:
        from openflix.jobs.worker import _die_with

        _die_with(parent)

    subprocess.Popen(
        [sys.executable, "-m", "openflix", "cdn", "fleet", "--quiet"],
        preexec_fn=die_with_parent,
        stdin=subprocess.DEVNULL,
    )
