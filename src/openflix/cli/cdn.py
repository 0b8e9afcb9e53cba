"""``openflix cdn``: the Open Connect control plane from the command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from openflix.cli.params import CATALOG_ID, NumberRange
from openflix.cli.recs import err, out

if TYPE_CHECKING:
    from openflix.cdn.simulate import Plays, PolicyResult, RecommenderFactory, SimulationResult
from openflix.services.platform import Platform
from openflix.store.db import upgrade

__all__ = ["cdn"]


def _platform() -> Platform:
    p = Platform()
    upgrade(p.engine)
    return p


@click.group()
def cdn() -> None:
    """Open Connect: inventory, steering, fill."""


@cdn.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def import_(path: Path) -> None:
    """Make the inventory equal to a topology file (JSON or YAML): validated whole, all or nothing."""
    from openflix.cdn.topology import load_file
    from openflix.services.openconnect import import_topology

    topo = load_file(path)
    report = import_topology(_platform().engine, topo)
    changed = ", ".join(
        f"{kind} +{c['added']} ~{c['updated']} -{c['removed']}"
        for kind, c in report.changes.items()
        if any(c.values())
    )
    click.echo(
        f"{path}: {len(topo.sites)} sites, {len(topo.isps)} ISPs, {len(topo.appliances)} appliances; "
        f"{changed or 'nothing changed'}"
    )


@cdn.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None)
def export(fmt: str, output: Path | None) -> None:
    """Write the whole inventory as a topology document (stdout, or --output)."""
    from openflix.cdn.topology import dump
    from openflix.services.openconnect import export_topology

    text = dump(export_topology(_platform().engine), fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@cdn.command("steer")
@click.argument("ip")
@click.argument("title", type=CATALOG_ID)
@click.option("-n", type=click.IntRange(1, 20), default=3, show_default=True, help="URLs to return at most.")
def steer(ip: str, title: int, n: int) -> None:
    """Where the client IP plays TITLE: signed URLs, best first (or the origin)."""
    result = _platform().steering.steer(ip, title, n)
    d = result.decision
    click.echo(f"client {d.ip}: region {d.region}, ISP {d.isp or '-'}")
    if d.origin:
        click.echo(f"title {title}: no healthy appliance holds it -> origin")
        click.echo(f"{'origin':9} {result.origin_url}")
    for choice, url in zip(d.choices, result.urls, strict=True):
        click.echo(f"{choice.tier:9} {url}")


@cdn.command("verify")
@click.argument("url")
@click.option("--ip", "client_ip", required=True, help="The client address the request came from.")
@click.option(
    "--appliance", "appliance_id", type=click.IntRange(0, 2**31 - 1), required=True,
    help="The appliance checking it (0: the origin).",
)  # fmt: skip
def verify(url: str, client_ip: str, appliance_id: int) -> None:
    """Check a playback URL as the appliance would: exit 0 with what it grants, or 2 with why not."""
    from datetime import UTC, datetime

    from openflix.cdn.signing import verify_url

    steering = _platform().steering
    granted = verify_url(url, client_ip, int(time.time()), steering.keys, appliance_id=appliance_id)
    until = datetime.fromtimestamp(granted.expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    click.echo(
        f"valid: title {granted.title_id} from appliance {granted.appliance_id} for {client_ip}, "
        f"until {until} (key {granted.key_id})"
    )


@cdn.command("fill")
@click.option("--site", default=None, help="One site (default: every site, exchange sites first).")
@click.option("--day", default=None, help="The local day filled, YYYY-MM-DD (default: the data's today).")
def fill(site: str | None, day: str | None) -> None:
    """Plan the fill now: copies by predicted demand, placed on healthy appliances, manifests stored."""
    import time

    from openflix import timeofday
    from openflix.errors import DataError
    from openflix.services.fill import fill_order, fill_sites

    p = _platform()
    try:
        when = timeofday.day(day) if day is not None else None
    except ValueError as exc:
        raise DataError(f"--day: {exc}") from None
    names = [site] if site is not None else fill_order(p.engine)  # --site "" is no site's name
    t0 = time.perf_counter()
    s = p.settings
    for r in fill_sites(p.engine, names, title_gb=s.title_gb, stale_s=s.health_stale_s, day=when):
        skipped = f"; skipped {', '.join(r.skipped)}" if r.skipped else ""
        click.echo(
            f"{r.site:22} {r.day} from {r.source:10} {r.appliances:3} appliances {r.titles:6,} titles "
            f"{r.copies:7,} copies +{r.added:,} (origin {r.added_from_origin:,}) -{r.deleted:,}{skipped}"
        )
    out.print(f"{len(names)} site(s) planned in {time.perf_counter() - t0:.1f} s")


@cdn.command("fleet")
@click.option(
    "--interval",
    type=NumberRange(min=0.1, max=86_400.0),
    default=60.0,
    show_default=True,
    help="Seconds between reports.",
)
@click.option("--once", is_flag=True, help="Report once and exit.")
@click.option("--quiet", is_flag=True, help="Print nothing.")
def fleet(interval: float, once: bool, quiet: bool) -> None:
    """Report health for every active appliance and apply every manifest, like a lab fleet.

    For demonstrations and tests where no real appliances report: without
    reports, every appliance is unknown and steering sends everyone to the
    origin; without applied manifests, no appliance serves what a fill added.
    Components keep their states; the load is random.
    """
    from openflix.services.openconnect import report_fleet

    p = _platform()
    rng = np.random.default_rng(p.settings.seed)
    while True:
        n = report_fleet(p.engine, rng, stale_s=p.settings.health_stale_s)
        if not quiet:
            err.print(f"reported {n} appliances")
        if once:
            return
        time.sleep(interval)


@cdn.command("simulate")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Ratings replayed as plays (default: the bundled latest-small; the protocol figures use ML-100K).",
)
@click.option("--sites", type=click.IntRange(1, 1000), default=8, show_default=True, help="Embedded sites.")
@click.option(
    "--storage", type=float, default=0.30, show_default=True, help="Share of the catalog a site stores."
)
@click.option("--no-recs", is_flag=True, help="Skip the policy with the recommender's predicted demand.")
@click.option(
    "--day-start",
    default="00:00",
    show_default=True,
    metavar="HH:MM",
    callback=lambda _ctx, _param, value: _seconds_after_midnight(value),
    help="When each day starts and the night's fill takes effect (UTC).",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    callback=lambda _ctx, _param, value: _plot_path(value),
    help="Write a plot (.png, .svg or .pdf).",
)
@click.option("--daily", default=None, metavar="POLICY", help="Also print POLICY's shares day by day.")
@click.option(
    "--headroom",
    is_flag=True,
    help="Also print how far any nightly fill could go (references that see the answer; slower).",
)
def simulate(
    data_path: Path | None,
    sites: int,
    storage: float,
    no_recs: bool,
    day_start: int,
    plot: Path | None,
    daily: str | None,
    headroom: bool,
) -> None:
    """Replay viewing in time order through every fill policy: shares served embedded, at exchange, origin.

    Members go to embedded sites by member id mod --sites; the fill of a day
    sees only earlier days (a day starts at --day-start, UTC); shares count
    after the first 20% of days.
    """
    from openflix.cdn import simulate as sim
    from openflix.cli.recs import read_data
    from openflix.errors import DataError
    from openflix.settings import Settings

    if not 0.0 < storage < 1.0:
        raise DataError(f"--storage: expected a share of the catalog in (0, 1), got {storage:g}")
    config = sim.SimulationConfig(storage_share=storage)
    names = sim.policy_names(config, with_recs=not no_recs)
    if daily is not None and daily not in names:  # said before the replay, not after it
        raise click.BadParameter(f"expected one of {', '.join(names)}, got {daily!r}", param_hint="--daily")
    data = read_data(data_path or Settings.from_env().data, "auto", None, None)
    plays = sim.Plays.from_interactions(data, n_sites=sites, day_start=day_start)
    with err.status("replaying") as status:
        result = sim.simulate(
            plays,
            config=config,
            recommender=None if no_recs else sim.default_recommender,
            progress=status.update,
        )
    click.echo(
        f"{result.n_plays:,} plays over {result.n_days:,} days "
        f"({result.warmup_days:,} warm-up days not counted); "
        f"{result.n_sites} sites of {result.site_capacity:,} titles"
    )
    click.echo(result.format_table())
    if daily is not None:
        _daily(result.policy(daily), result.first_day)
    if headroom:
        _headroom(plays, result, None if no_recs else sim.default_recommender)
    if plot is not None:
        click.echo(f"wrote {sim.plot(result, plot)}")


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _plot_path(value: Path | None) -> Path | None:
    """A plot's file name, checked before the replay: matplotlib picks the format by its suffix."""
    if value is not None and value.suffix.lower() not in PLOT_SUFFIXES:
        raise click.BadParameter(f"expected a file ending in {', '.join(PLOT_SUFFIXES)}, got {str(value)!r}")
    return value


def _seconds_after_midnight(value: str) -> int:
    """``"HH:MM"`` -> seconds after midnight; anything else is a usage error (exit 2)."""
    from openflix import timeofday

    try:
        return timeofday.minutes(value) * 60
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _headroom(plays: Plays, result: SimulationResult, recommender: RecommenderFactory | None) -> None:
    """The references of :mod:`openflix.cdn.headroom`, and each policy's first-day / returning split."""
    from openflix.cdn.headroom import headroom, split_ratio

    with err.status("replaying the references"):
        room = headroom(plays, result.config, tie=result.choice.forecast, recommender=recommender)
    click.echo("\nhow far a nightly fill could go (references, not policies):")
    rows = [
        ("best forecast knobs, chosen on the counted days", f"{room.hindsight_ratio:.4f}"),
        (f"that day's plays at the other {result.n_sites - 1} sites", f"{room.other_sites_today:.4f}"),
        (
            f"every other day, before and after (decay {room.both_sides_decay:g})",
            f"{room.both_sides_ratio:.4f}",
        ),
    ]
    if room.returning_ratio is not None:
        rows.append(
            (
                f"fill + top {room.returning_top_n} for returning members who come",
                f"{room.returning_ratio:.4f}",
            )
        )
    rows.append(("counted plays by members on their first day", f"{room.first_day_share:.1%}"))
    for label, value in rows:
        click.echo(f"  {label:<50} {value}")
    click.echo(f"  (the best knobs: {room.hindsight_knobs.describe()})")
    click.echo(f"  {'policy':<18} {'first-day':>9} {'returning':>9}")
    for p in result.policies:
        if p.hit is not None:
            new, back = split_ratio(plays, p.hit, result.warmup_days)
            click.echo(f"  {p.name:<18} {new:>9.4f} {back:>9.4f}")


def _daily(policy: PolicyResult, first_day: int) -> None:
    """One line per day of a policy's replay: plays and the shares served at each tier."""
    from datetime import UTC, datetime

    total = policy.embedded + policy.exchange + policy.origin
    click.echo(f"\n{policy.name}, day by day (days up to {policy.warmup_days} are warm-up):")
    click.echo(f"{'day':>4} {'date':10} {'plays':>6} {'embedded':>9} {'exchange':>9} {'origin':>7}")
    for d in range(total.size):
        if total[d] == 0:
            continue
        date = datetime.fromtimestamp((first_day + d) * 86_400, UTC).date()
        n = int(total[d])
        click.echo(
            f"{d + 1:>4} {date} {n:>6,} {policy.embedded[d] / n:>9.4f} {policy.exchange[d] / n:>9.4f} "
            f"{policy.origin[d] / n:>7.4f}"
        )
