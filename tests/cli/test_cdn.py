"""``openflix cdn``: import, export, fleet, fill and steer from the command line; exit 2 on bad input."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select, update

from openflix.cli import cli
from openflix.recs.data import Interactions
from openflix.services.fill import due_sites
from openflix.store.db import connect
from tests.conftest import write_ratings_csv

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "topology.yaml"


def test_import_fill_and_steer(env: dict[str, str], tmp_path: Path, store_data: Interactions) -> None:
    run = CliRunner().invoke
    csv = write_ratings_csv(store_data, tmp_path / "ratings.csv")
    assert run(cli, ["db", "import", "--data", str(csv)]).exit_code == 0
    r = run(cli, ["cdn", "import", str(SAMPLE)])
    assert r.exit_code == 0, r.output
    assert "222 appliances" in r.output and "appliances +222" in r.output
    from openflix.store import cdn as cdn_store

    engine = connect(env["OPENFLIX_DATABASE_URL"])
    with engine.connect() as conn:
        counted = cdn_store.counters(conn, (*cdn_store.COUNTERS, "components"))
    again = run(cli, ["cdn", "import", str(SAMPLE)])
    assert "nothing changed" in again.output
    with engine.connect() as conn:  # so every server keeps its steering: nothing to rebuild
        assert cdn_store.counters(conn, (*cdn_store.COUNTERS, "components")) == counted
    other = tmp_path / "other-default.yaml"  # only the default region differs: a change, said and counted
    other.write_text(re.sub(r"(?m)^default_region: \S+", "default_region: gb", SAMPLE.read_text()))
    moved = run(cli, ["cdn", "import", str(other)])
    assert moved.exit_code == 0 and "default_region +0 ~1 -0" in moved.output, moved.output
    with engine.connect() as conn:
        assert cdn_store.counters(conn)[0] > counted[0]
    assert run(cli, ["cdn", "import", str(SAMPLE)]).exit_code == 0
    engine.dispose()
    exported = run(cli, ["cdn", "export", "--format", "json"])
    assert exported.exit_code == 0 and len(yaml.safe_load(exported.output)["appliances"]) == 222

    # before any report, every appliance is unknown: steering sends the client to the origin
    before = run(cli, ["cdn", "steer", "10.1.0.9", str(int(store_data.item_ids[0]))])
    assert before.exit_code == 0 and "-> origin" in before.output
    assert "origin    https://origin.openflix.example/v1/" in before.output  # a signed URL there
    assert run(cli, ["cdn", "fleet", "--once", "--quiet"]).exit_code == 0
    r = run(cli, ["cdn", "fill", "--site", "ix-nyc"])
    assert r.exit_code == 0, r.output
    assert "ix-nyc" in r.output and "from origin" in r.output
    r = run(cli, ["cdn", "fill", "--site", "northwind-bos"])
    assert "from ix-nyc" in r.output  # the nearest exchange site of its region
    # ix-nyc was filled first and holds more than this site: most of what it adds comes from there
    added, origin = re.search(r"\+([\d,]+) \(origin ([\d,]+)\)", r.output).groups()  # type: ignore[union-attr]
    assert int(origin.replace(",", "")) < int(added.replace(",", ""))
    title = str(int(store_data.item_ids[0]))
    # planned, not fetched yet: until the appliances say they applied their manifests, the origin serves
    pending = run(cli, ["cdn", "steer", "10.1.0.9", title, "-n", "2"])
    assert pending.exit_code == 0 and "-> origin" in pending.output, pending.output
    assert run(cli, ["cdn", "fleet", "--once", "--quiet"]).exit_code == 0  # the lab fleet applies them
    steered = run(cli, ["cdn", "steer", "10.1.0.9", title, "-n", "2"])
    assert steered.exit_code == 0
    assert "ISP Northwind" in steered.output and "https://" in steered.output
    assert "-> origin" not in steered.output and "northwind-bos" in steered.output, steered.output

    # the appliance's check, from the command line
    url = re.search(r"https://\S+", steered.output).group(0)  # type: ignore[union-attr]
    appliance = re.search(r"[?&]a=(\d+)", url).group(1)  # type: ignore[union-attr]
    ok = run(cli, ["cdn", "verify", url, "--ip", "10.1.0.9", "--appliance", appliance])
    assert ok.exit_code == 0 and f"valid: title {title} from appliance {appliance}" in ok.output, ok.output
    tampered = url.replace(f"/{title}?", f"/{int(title) + 1}?")
    for args in (
        [url, "--ip", "10.1.0.10", "--appliance", appliance],  # another client
        [url, "--ip", "10.1.0.9", "--appliance", str(int(appliance) + 1)],  # another appliance
        [tampered, "--ip", "10.1.0.9", "--appliance", appliance],
    ):
        bad = run(cli, ["cdn", "verify", *args])
        assert bad.exit_code == 2 and bad.output.startswith("error: ") and "Traceback" not in bad.output, args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cdn", "steer", "10.1.0.999", "1"], "is not an IPv4 or IPv6 address"),
        (["cdn", "steer", "10.1.0.9", "99999999"], "title 99999999 does not exist"),
        (["cdn", "fill", "--site", "atlantis"], "site 'atlantis' does not exist"),
        (["cdn", "fill", "--day", "yesterday"], "--day: expected a date"),
        (["cdn", "fill", "--day", "20260115"], "--day: expected a date YYYY-MM-DD, got '20260115'"),
        (["cdn", "fill", "--site", ""], "site '' does not exist"),  # it filled every site
        (["cdn", "import", "missing.yaml"], "no such topology file"),
        (
            ["cdn", "steer", "10.1.0.9", "99999999999999999999"],
            "'TITLE': 99999999999999999999 is not",
        ),
        (["cdn", "fleet", "--interval", "-1"], "'--interval': -1.0 is not in the range 0.1<=x<=86400.0"),
        (["cdn", "export", "-o", "no-such-dir/topology.yaml"], "no-such-dir/topology.yaml: No such file"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    env: dict[str, str], tmp_path: Path, store_data: Interactions, args: list[str], message: str
) -> None:
    run = CliRunner().invoke
    assert (
        run(cli, ["db", "import", "--data", str(write_ratings_csv(store_data, tmp_path / "r.csv"))]).exit_code
        == 0
    )
    r = run(cli, args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_a_bad_topology_file_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["appliance_models"][0]["storage_tb"] = -1
    doc["announcements"][0]["prefixes"].append("10.0.0.0/33")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = CliRunner().invoke(cli, ["cdn", "import", str(bad)])
    assert r.exit_code == 2
    assert "2 problem(s); nothing was written" in r.output
    assert "bad.yaml:" in r.output and "storage_tb" in r.output and "10.0.0.0/33" in r.output
    exported = CliRunner().invoke(cli, ["cdn", "export", "--format", "json"])
    assert yaml.safe_load(exported.output)["appliances"] == []


def test_sites_are_due_in_their_own_local_window(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    assert CliRunner().invoke(cli, ["cdn", "import", str(SAMPLE)]).exit_code == 0
    engine = connect(env["OPENFLIX_DATABASE_URL"])
    # 07:30 UTC is 02:30 in New York (inside 02:00-06:00) and 16:30 in Tokyo (outside)
    due = dict(due_sites(engine, datetime(2026, 1, 15, 7, 30, tzinfo=UTC)))
    assert due.get("ix-nyc") == "2026-01-15"
    assert "ix-tyo" not in due
    # 18:30 UTC is 03:30 the next day in Tokyo
    later = dict(due_sites(engine, datetime(2026, 1, 15, 18, 30, tzinfo=UTC)))
    assert later.get("ix-tyo") == "2026-01-16" and "ix-nyc" not in later
    # every site keeps its own city's clock: 14:30 UTC is 06:30 in Los Angeles (inside 03:00-07:00),
    # 09:30 in Boston
    west = dict(due_sites(engine, datetime(2026, 1, 15, 14, 30, tzinfo=UTC)))
    assert west.get("sierra-lax") == "2026-01-15" and "northwind-bos" not in west
    # a window across midnight fills for the day it leads into, before and after midnight alike
    from openflix.store.schema import Site

    with engine.begin() as conn:
        conn.execute(update(Site).where(Site.name == "ix-nyc").values(fill_window="22:00-02:00"))
    for hour in (4, 6):  # 23:00 on the 15th and 01:00 on the 16th in New York
        due = dict(due_sites(engine, datetime(2026, 1, 16, hour, 0, tzinfo=UTC)))
        assert due.get("ix-nyc") == "2026-01-16", (hour, due.get("ix-nyc"))
    # a window stored before windows were checked, that never comes, is said in the log, not a crash
    with engine.begin() as conn:
        conn.execute(update(Site).where(Site.name == "ix-nyc").values(fill_window="03:00-03:00"))
    with caplog.at_level("WARNING", logger="openflix.cdn"):
        due = dict(due_sites(engine, datetime(2026, 1, 15, 8, 0, tzinfo=UTC)))
        due_sites(engine, datetime(2026, 1, 15, 8, 1, tzinfo=UTC))  # the clock's next tick: not said again
    assert "ix-nyc" not in due and due, due
    assert caplog.text.count("site ix-nyc is never filled on schedule: fill_window a window that ends") == 1
    engine.dispose()


def test_the_fill_clock_submits_the_sites_in_their_window_under_their_job_ids_and_stops(
    env: dict[str, str],
) -> None:
    import threading
    import time

    from openflix.errors import NotFoundError
    from openflix.services.fill import start_fill_clock
    from openflix.services.platform import Platform
    from openflix.store.schema import JobRecord

    assert CliRunner().invoke(cli, ["cdn", "import", str(SAMPLE)]).exit_code == 0
    platform = Platform()
    stop = threading.Event()
    at = datetime(2026, 1, 15, 7, 30, tzinfo=UTC)  # ix-nyc's window (see above), not ix-tyo's
    thread = start_fill_clock(platform, interval=0.02, stop=stop, clock=lambda: at)
    assert thread is not None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                job = platform.jobs.get("fill-ix-nyc-2026-01-15")
                break
            except NotFoundError:
                assert time.monotonic() < deadline, "the clock never submitted ix-nyc's fill"
                time.sleep(0.02)
        assert job.kind == "fill" and job.params == {"site": "ix-nyc", "day": "2026-01-15"}
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()  # stopped
    with platform.engine.connect() as conn:
        ids = list(conn.scalars(select(JobRecord.id).where(JobRecord.kind == "fill")))
    assert "fill-ix-nyc-2026-01-15" in ids and not any("ix-tyo" in i for i in ids)  # outside its window
    platform.close()


def test_an_embedded_site_waits_for_its_source_exchange_sites_fill(env: dict[str, str]) -> None:
    from sqlalchemy import insert, select

    from openflix.store.schema import Fill, Site

    assert CliRunner().invoke(cli, ["cdn", "import", str(SAMPLE)]).exit_code == 0
    engine = connect(env["OPENFLIX_DATABASE_URL"])
    # 08:30 UTC: 03:30 in Atlanta (03:00-07:00) and 02:30 in Chicago (02:00-06:00), the same instant
    # of both windows; Atlanta fills from ix-chi, which has not filled yet
    now = datetime(2026, 1, 15, 8, 30, tzinfo=UTC)
    due = dict(due_sites(engine, now))
    assert due.get("ix-chi") == "2026-01-15" and "bluepeak-atl" not in due
    # but only for the first half of its window: at 05:30 in Atlanta (04:30 in Chicago, ix-chi still
    # without a fill, e.g. its job failed) it fills from what ix-chi holds
    late = dict(due_sites(engine, datetime(2026, 1, 15, 10, 30, tzinfo=UTC)))
    assert late.get("ix-chi") == "2026-01-15" and late.get("bluepeak-atl") == "2026-01-15"
    with engine.begin() as conn:
        chi = conn.scalar(select(Site.id).where(Site.name == "ix-chi"))
        conn.execute(
            insert(Fill).values(site_id=chi, day="2026-01-15", source="origin", titles=0, copies=0,
                                added=0, deleted=0, created_at=0)
        )  # fmt: skip
    due = dict(due_sites(engine, now))
    assert due.get("bluepeak-atl") == "2026-01-15" and "ix-chi" not in due
    engine.dispose()


def test_simulate_reports_every_policy_and_writes_a_plot(env: dict[str, str], tmp_path: Path) -> None:
    # 60 days of plays of 300 members over 200 titles, Zipf-popular, each member playing a title once
    rng = np.random.default_rng(3)
    rows = {}
    for _ in range(6_000):
        member, title = int(rng.integers(1, 301)), int(rng.zipf(1.3) % 200) + 1
        rows.setdefault((member, title), 1_600_000_000 + int(rng.integers(0, 60 * 86_400)))
    csv = tmp_path / "ratings.csv"
    csv.write_text("".join(f"{m},{t},4,{ts}\n" for (m, t), ts in rows.items()))
    png = tmp_path / "offload.png"
    r = CliRunner().invoke(
        cli,
        ["cdn", "simulate", "--data", str(csv), "--plot", str(png), "--daily", "openflix", "--headroom"],
    )
    assert r.exit_code == 0, r.output
    assert (
        "how far a nightly fill could go" in r.output
        and "that day's plays at the other 7 sites" in r.output
        and "every other day, before and after" in r.output
    )
    assert re.search(r"\n  fill \+ top \d+ for returning members who come +0\.\d{4}\n", r.output)
    assert re.search(r"\n  openflix +0\.\d{4} +0\.\d{4}\n", r.output)  # first-day and returning shares
    assert "openflix, day by day" in r.output and r.output.count("\n") > 60
    for policy in ("lru", "popularity-0.95", "openflix", "openflix+recs", "clairvoyant"):
        assert f"\n{policy} " in r.output
    assert "warm-up days not counted" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(cli, ["cdn", "simulate", "--data", str(csv), "--storage", "0"])
    assert bad.exit_code == 2 and "--storage" in bad.output
    bad = CliRunner().invoke(cli, ["cdn", "simulate", "--data", str(csv), "--plot", str(tmp_path / "p.txt")])
    assert bad.exit_code == 2 and "expected a file ending in .png" in bad.output  # before the replay
    bad = CliRunner().invoke(
        cli, ["cdn", "simulate", "--data", str(csv), "--no-recs", "--daily", "openflix+recs"]
    )
    assert (
        bad.exit_code == 2 and "expected one of lru, popularity-0.8," in bad.output
    )  # before the replay too
    assert "openflix+recs" not in bad.output.split("expected one of")[1].split(", got")[0]
    utc, shifted = (
        CliRunner().invoke(cli, ["cdn", "simulate", "--data", str(csv), "--no-recs", "--day-start", start])
        for start in ("00:00", "08:00")
    )
    assert utc.exit_code == 0 and shifted.exit_code == 0, shifted.output
    assert re.search(r"\nopenflix +0\.\d{4}", shifted.output) and shifted.output != utc.output  # other days
    for wrong in ("8", "24:00", "08:60", "8:5", "\u0660\u0668:00"):
        bad = CliRunner().invoke(cli, ["cdn", "simulate", "--data", str(csv), "--day-start", wrong])
        assert bad.exit_code == 2 and "expected a time of day HH:MM from 00:00 to 23:59" in bad.output, wrong


@pytest.mark.parametrize("interval", ["nan", "inf", "0"])
def test_fleet_interval_must_be_a_number_of_seconds_it_can_sleep(env: dict[str, str], interval: str) -> None:
    r = CliRunner().invoke(cli, ["cdn", "fleet", "--interval", interval, "--quiet"])
    assert r.exit_code == 2 and "'--interval'" in r.output and "Traceback" not in r.output, r.output
