"""Steering decisions per second, in process, on a synthetic Open Connect-sized topology.

Six regions, each with two exchange sites of 20 appliances; 60 ISPs with three
embedded sites of 4 appliances each (960 appliances); every ISP announces 50
IPv4 and 10 IPv6 prefixes to its sites; 17,770 titles whose popularity follows
a Zipf law, each embedded site holding its region's top 30% and the exchange
sites everything.  Requests: 80% from announced prefixes, 15% from region
blocks, 5% from nowhere; titles drawn by popularity.  Then the fill plan for
1,000 appliances, and a serving process's steering while a fleet applies its
manifests one at a time (the sample topology in a temporary SQLite store).

    python benchmarks/cdn.py [--decisions 300000]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from _doc import write_section
from openflix.cdn.inventory import Appliance, Site, SiteKind
from openflix.cdn.prefixes import Announcement, PrefixTable
from openflix.cdn.steering import Health, Holders, Steering
from openflix.services.steering import SNAPSHOT_MAX_AGE

ROOT = Path(__file__).resolve().parents[1]
MARK = "## CDN steering"
TARGET = 50_000
N_TITLES = 17_770


def topology(seed: int, scale: int = 1) -> tuple[Steering, list[str], np.ndarray, float]:
    """The steering snapshot, a pool of client addresses and of titles, and the build time (s).

    ``scale`` multiplies the ISPs of each region and the appliances of each
    exchange site (scale 19: 18,240 appliances, a global fleet's size); an
    exchange appliance holds ``1 / (2 * scale)`` of the catalog, so each
    exchange site keeps about 10 copies of a title at any scale.
    """
    rng = np.random.default_rng(seed)
    regions = ["us-east", "us-west", "eu", "br", "jp", "in"]
    sites: list[Site] = []
    appliances: list[Appliance] = []
    announced: list[Announcement] = []
    region_blocks: list[Announcement] = []
    held: dict[int, np.ndarray] = {}
    popularity = 1.0 / np.arange(1, N_TITLES + 1) ** 0.9
    popularity /= popularity.sum()
    clients: list[str] = []
    top = int(N_TITLES * 0.3)

    def add_appliances(site: Site, count: int) -> list[int]:
        ids = []
        for _ in range(count):
            a = Appliance(len(appliances) + 1, site.id, f"oca{len(appliances) + 1}.{site.name}.example")
            appliances.append(a)
            ids.append(a.id)
        return ids

    for r, region in enumerate(regions):
        for x in range(2):
            site = Site(len(sites) + 1, f"ix{r}{x}", SiteKind.EXCHANGE, region)
            sites.append(site)
            for a in add_appliances(site, 20 * scale):
                held[a] = rng.choice(N_TITLES, size=N_TITLES // (2 * scale), replace=False)
        block = ipaddress.ip_network(f"100.{64 + r}.0.0/16")
        region_blocks.append(Announcement(str(block), region, 0))
        clients += [str(block[int(h)]) for h in rng.integers(1, 65_000, 2_000)]
        for i in range(10 * scale):
            g = r * 10 * scale + i  # the ISP's number in the whole fleet: a /20 of 10.0.0.0/8 each
            isp = f"isp{r}-{i}"
            isp_sites = []
            for s in range(3):
                site = Site(len(sites) + 1, f"{isp}-s{s}", SiteKind.EMBEDDED, region)
                sites.append(site)
                isp_sites.append((site, add_appliances(site, 4)))
            for p in range(50):
                net = ipaddress.ip_network(f"{ipaddress.IPv4Address((10 << 24) + g * 4096 + p * 64)}/26")
                for site, _ in isp_sites:
                    announced.append(Announcement(str(net), isp, site.id))
                clients += [str(net[int(h)]) for h in rng.integers(1, 63, 20)]
            for p in range(10):
                net6 = ipaddress.ip_network(f"2001:db8:{g:x}:{p:x}::/64")
                announced.append(Announcement(str(net6), isp, isp_sites[p % 3][0].id))
                clients += [str(net6[int(h)]) for h in rng.integers(1, 2**32, 20)]
            for _site, ids in isp_sites:  # the region's top 30%, spread over the site's appliances
                for k, a in enumerate(ids):
                    held[a] = np.arange(k, top, len(ids))
    clients += [f"203.0.113.{h}" for h in rng.integers(1, 255, 1_000)]
    health = {a.id: Health(True, float(rng.uniform(0.1, 0.9))) for a in appliances}
    t0 = time.perf_counter()
    steering = Steering(
        sites,
        appliances,
        PrefixTable(announced),
        Holders.from_arrays(held),
        health,
        regions=PrefixTable(region_blocks),
        default_region="us-east",
    )
    build = time.perf_counter() - t0
    titles = rng.choice(N_TITLES, size=100_000, p=popularity)
    return steering, clients, titles, build


def decision_rate(
    steering: Steering, clients: list[str], titles: np.ndarray, n: int, seed: int
) -> tuple[float, float, dict[str, int]]:
    """Decisions per second over ``n`` requests drawn from the pools, the seconds, the first tiers."""
    rng = np.random.default_rng(seed + 1)
    ips = [clients[i] for i in rng.integers(0, len(clients), n)]
    ts = titles[rng.integers(0, len(titles), n)].tolist()
    for ip, t in zip(ips[:1000], ts[:1000], strict=True):  # warm
        steering.decide(ip, t)
    decide = steering.decide
    t0 = time.perf_counter()
    tiers: dict[str, int] = {}
    for ip, t in zip(ips, ts, strict=True):
        d = decide(ip, t, 3)
        key = d.choices[0].tier.value if d.choices else "origin"
        tiers[key] = tiers.get(key, 0) + 1
    seconds = time.perf_counter() - t0
    return n / seconds, seconds, tiers


def plan_seconds(seed: int) -> tuple[float, int]:
    """Fill plans of 100 sites x 10 appliances (1,000) for 17,770 titles, 30% of them per site."""
    from openflix.cdn.fill import copies_for, place

    rng = np.random.default_rng(seed)
    titles = np.arange(N_TITLES)
    demand = 1.0 / np.arange(1, N_TITLES + 1) ** 0.9
    copies = 0
    t0 = time.perf_counter()
    for site in range(100):
        ids = list(range(site * 10, site * 10 + 10))
        per_site = copies_for(rng.permutation(demand), 10, 0.3 * N_TITLES)
        plan = place(titles, per_site, ids, [0.03 * N_TITLES] * 10)
        copies += sum(len(v) for v in plan.values())
    return time.perf_counter() - t0, copies


def manifest_updates(seed: int, applied: int = 40) -> dict[str, float]:
    """A serving process's steering while appliances apply a fill's manifests one at a time.

    The sample topology (222 appliances) in a fresh SQLite store, each active
    appliance holding a Zipf-popular share of 17,770 titles (4,000; 8,000 on
    the 280 TB storage model); a second night's fill changes 5% of
    each appliance's titles; then ``applied`` appliances apply their manifest
    one after the other, each followed by one steering decision.
    """
    import statistics
    import tempfile

    from sqlalchemy import insert, select

    from openflix.cdn.topology import load_file
    from openflix.services.openconnect import import_topology, report_fleet
    from openflix.services.steering import SteeringService, _Placement
    from openflix.settings import Settings
    from openflix.store import cdn as store
    from openflix.store.db import connect, upgrade
    from openflix.store.schema import Manifest, Title

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, N_TITLES + 1) ** 0.9
    popularity /= popularity.sum()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = connect(url)
        upgrade(engine)
        import_topology(engine, load_file(ROOT / "data" / "topology.yaml"))
        with engine.begin() as conn:
            conn.execute(insert(Title), [{"id": t, "name": f"t{t}", "genres": ""} for t in range(N_TITLES)])
        report_fleet(engine, rng, stale_s=3600)
        with engine.connect() as conn:
            rows = [r for r in store.appliance_rows(conn) if r.status == "active"]

        def night(day: str, before: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
            plans: dict[int, np.ndarray] = {}
            for r in rows:
                n = 8_000 if r.storage_tb >= 200 else 4_000
                if r.id in before:  # 5% of the titles change
                    keep = rng.choice(before[r.id], size=int(n * 0.95), replace=False)
                    new = rng.choice(N_TITLES, size=n, replace=False, p=popularity)
                    plans[r.id] = np.unique(np.concatenate([keep, np.setdiff1d(new, keep)[: n - keep.size]]))
                else:
                    plans[r.id] = np.sort(rng.choice(N_TITLES, size=n, replace=False, p=popularity))
            with engine.begin() as conn:
                for site in sorted({r.site_id for r in rows}):
                    plan = {r.id: plans[r.id] for r in rows if r.site_id == site}
                    changes = [
                        (a, np.setdiff1d(t, before.get(a, np.empty(0, np.int64))),
                         np.setdiff1d(before.get(a, np.empty(0, np.int64)), t))
                        for a, t in plan.items()
                    ]  # fmt: skip
                    store.record_fill(conn, site_id=site, day=day, source="origin", plan=plan,
                                      manifests=changes, now=int(time.time()))  # fmt: skip
            return plans

        first = night("2026-01-01", {})
        with engine.begin() as conn:
            store.apply_all_manifests(conn, int(time.time()))
        night("2026-01-02", first)
        settings = Settings(database_url=url, url_keys="bench:" + "ab" * 32, health_stale_s=3600)
        service = SteeringService(engine, settings)
        service.steer("10.1.0.9", 1)
        gc.collect()
        gc.freeze()  # what a serving worker does once warmed up (openflix.api.prepare)
        whole = []
        for _ in range(3):
            with engine.connect() as conn:
                t0 = time.perf_counter()
                _Placement.read(conn, 0, 0)
                whole.append(time.perf_counter() - t0)
        after = []
        with engine.connect() as conn:
            query = select(Manifest.appliance_id, Manifest.fill_id).where(Manifest.applied_at.is_(None))
            pending = list(conn.execute(query.limit(applied)))
        for appliance_id, fill_id in pending:
            with engine.begin() as conn:
                store.apply_manifest(conn, appliance_id, fill_id, int(time.time()))
            t0 = time.perf_counter()
            service.steer("10.1.0.9", 1)
            after.append(time.perf_counter() - t0)
        steady = []  # back to back over more than two snapshot ages: no request waits for a rebuild
        ends = time.perf_counter() + SNAPSHOT_MAX_AGE * 2.4
        while time.perf_counter() < ends:
            t0 = time.perf_counter()
            service.steer("10.1.0.9", 1)
            steady.append(time.perf_counter() - t0)
        with engine.connect() as conn:
            copies = sum(len(v) for v in store.servable(conn).values())
        service.max_age = float("inf")
        for thread in (service.refresher, service.rereader):
            if thread is not None:
                thread.join()
        service.reader.close()
        engine.dispose()
    return {
        "appliances": len(rows),
        "copies": copies,
        "applied": len(after),
        "whole_ms": statistics.median(whole) * 1000,
        "after_median_ms": statistics.median(after) * 1000,
        "after_max_ms": max(after) * 1000,
        "steady_s": SNAPSHOT_MAX_AGE * 2.4,
        "steady_n": len(steady),
        "steady_median_us": statistics.median(steady) * 1e6,
        "steady_over_10ms": sum(x > 0.010 for x in steady),
        "steady_max_ms": max(steady) * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--global-scale", type=int, default=19, help="ISPs and exchange appliances x this")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    steering, clients, titles, build = topology(args.seed)
    rate, seconds, tiers = decision_rate(steering, clients, titles, args.decisions, args.seed)
    share = ", ".join(f"{k} {v / args.decisions:.1%}" for k, v in sorted(tiers.items()))
    print(f"snapshot built in {build * 1000:.0f} ms; {args.decisions:,} decisions in {seconds:.2f} s")
    print(f"{rate:,.0f} decisions/s")
    print(f"first choice by tier: {share}")
    text = (
        f"{MARK}\n\nProduced by `python benchmarks/cdn.py` on {datetime.now(UTC):%Y-%m-%d}, one thread "
        "of this 2-core machine: a synthetic topology of 6 regions, 12 exchange sites and 180 embedded sites "
        f"of 60 ISPs ({steering.n_appliances:,} appliances, {len(steering.prefixes):,} announced IPv4 and "
        "IPv6 prefixes), "
        f"17,770 titles with Zipf popularity. Each decision: longest-prefix match, candidates by tier, "
        "health and placement, up to 3 ranked appliances.\n\n"
        "| decisions | seconds | decisions/s | target | snapshot build ms | first choice by tier |\n"
        "|---:|---:|---:|---:|---:|---|\n"
        f"| {args.decisions:,} | {seconds:.2f} | **{rate:,.0f}** | ≥ {TARGET:,} "
        f"({'met' if rate >= TARGET else '**not met**'}) | {build * 1000:.0f} | {share} |\n"
    )
    big, big_clients, big_titles, big_build = topology(args.seed, args.global_scale)
    n_big = args.decisions // 3
    big_rate, _, _ = decision_rate(big, big_clients, big_titles, n_big, args.seed)
    copies_big = big.holders.copies
    print(
        f"global fleet ({big.n_appliances:,} appliances, {copies_big:,} copies): snapshot built in "
        f"{big_build:.1f} s; {big_rate:,.0f} decisions/s"
    )
    text += (
        f"\nThe same at a global fleet's size (`--global-scale {args.global_scale}`: "
        f"{args.global_scale}× the ISPs and the exchange appliances, {big.n_appliances:,} appliances, "
        f"{len(big.prefixes):,} prefixes, {copies_big:,} copies; an exchange site keeps about 10 copies "
        f"of a title): **{big_rate:,.0f}** decisions/s over {n_big:,} decisions, snapshot built in "
        f"{big_build:.1f} s.\n"
    )
    del big, big_clients, big_titles
    plan_s, copies = plan_seconds(args.seed)
    print(f"fill plan, 17,770 titles on 1,000 appliances: {plan_s:.2f} s ({copies:,} copies)")
    text += (
        "\nFill plan (`openflix.cdn.fill`: copies by demand, weighted rendezvous placement within storage) "
        "for 17,770 titles on 1,000 appliances (100 sites × 10, each site storing 30% of the catalog): "
        f"**{plan_s:.2f} s** for {copies:,} copies (target ≤ 10 s).\n"
    )
    m = manifest_updates(args.seed)
    print(
        f"applied manifests: first decision after each {m['after_median_ms']:.1f} ms median "
        f"(max {m['after_max_ms']:.1f}); a whole placement read {m['whole_ms']:.0f} ms"
    )
    print(
        f"back to back for {m['steady_s']:.0f} s: {m['steady_n']:,.0f} decisions, "
        f"{m['steady_median_us']:.0f} µs median, {m['steady_over_10ms']:.0f} over 10 ms, "
        f"max {m['steady_max_ms']:.1f} ms"
    )
    text += (
        "\nSteering in a serving process (`SteeringService`) while a fleet applies its manifests "
        f"one at a time: the sample topology in SQLite, {m['appliances']:.0f} active appliances holding "
        f"{m['copies']:,.0f} copies, a second night's fill changing 5% of each; {m['applied']:.0f} "
        "appliances apply their manifest one after the other, each followed by one decision. The first "
        f"decision after each: **{m['after_median_ms']:.1f} ms** median, {m['after_max_ms']:.1f} ms at most "
        "(only the appliance that changed is read again). Reading every appliance's titles, what each "
        f"applied manifest made every process do before: **{m['whole_ms']:.0f} ms**.\n"
        f"\nThen {m['steady_n']:,.0f} decisions back to back for {m['steady_s']:.0f} s, across two ages of "
        f"the snapshot (rebuilt on a thread once it is {SNAPSHOT_MAX_AGE:g} s old; the process froze what "
        "it had loaded out of the garbage collector's walks once warmed up, as a serving worker does): "
        f"{m['steady_median_us']:.0f} µs median, {m['steady_over_10ms']:.0f} over 10 ms, "
        f"{m['steady_max_ms']:.1f} ms at most.\n"
    )
    write_section(args.out, MARK, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
