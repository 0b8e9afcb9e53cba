"""Steering decisions per second, in process, on a synthetic Open Connect-sized topology.

Six regions, each with two exchange sites of 20 appliances; 60 ISPs with three
embedded sites of 4 appliances each (960 appliances); every ISP announces 50
IPv4 and 10 IPv6 prefixes to its sites; 17,770 titles whose popularity follows
a Zipf law, each embedded site holding its region's top 30% and the exchange
sites everything.  Requests: 80% from announced prefixes, 15% from region
blocks, 5% from nowhere; titles drawn by popularity.

    python benchmarks/cdn.py [--decisions 300000]
"""

from __future__ import annotations

import argparse
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
from openflix.cdn.steering import Health, Steering

ROOT = Path(__file__).resolve().parents[1]
MARK = "## CDN steering"
TARGET = 50_000
N_TITLES = 17_770


def topology(seed: int) -> tuple[Steering, list[str], np.ndarray, float]:
    """The steering snapshot, a pool of client addresses and of titles, and the build time (s)."""
    rng = np.random.default_rng(seed)
    regions = ["us-east", "us-west", "eu", "br", "jp", "in"]
    sites: list[Site] = []
    appliances: list[Appliance] = []
    announced: list[Announcement] = []
    region_blocks: list[Announcement] = []
    placement: dict[int, list[int]] = {}
    popularity = 1.0 / np.arange(1, N_TITLES + 1) ** 0.9
    popularity /= popularity.sum()
    clients: list[str] = []

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
            for a in add_appliances(site, 20):
                for t in rng.choice(N_TITLES, size=N_TITLES // 2, replace=False).tolist():
                    placement.setdefault(t, []).append(a)
        block = ipaddress.ip_network(f"100.{64 + r}.0.0/16")
        region_blocks.append(Announcement(str(block), region, 0))
        clients += [str(block[int(h)]) for h in rng.integers(1, 65_000, 2_000)]
        for i in range(10):
            isp = f"isp{r}-{i}"
            isp_sites = []
            for s in range(3):
                site = Site(len(sites) + 1, f"{isp}-s{s}", SiteKind.EMBEDDED, region)
                sites.append(site)
                isp_sites.append((site, add_appliances(site, 4)))
            for p in range(50):
                net = ipaddress.ip_network(f"{10 + r}.{i * 20 + p // 4}.{(p % 4) * 64}.0/26")
                for site, _ in isp_sites:
                    announced.append(Announcement(str(net), isp, site.id))
                clients += [str(net[int(h)]) for h in rng.integers(1, 63, 20)]
            for p in range(10):
                net6 = ipaddress.ip_network(f"2001:db8:{r * 16 + i:x}:{p:x}::/64")
                announced.append(Announcement(str(net6), isp, isp_sites[p % 3][0].id))
                clients += [str(net6[int(h)]) for h in rng.integers(1, 2**32, 20)]
            top = int(N_TITLES * 0.3)
            for _site, ids in isp_sites:
                for t in range(top):
                    placement.setdefault(t, []).append(ids[t % len(ids)])
    clients += [f"203.0.113.{h}" for h in rng.integers(1, 255, 1_000)]
    health = {a.id: Health(True, float(rng.uniform(0.1, 0.9))) for a in appliances}
    t0 = time.perf_counter()
    steering = Steering(
        sites,
        appliances,
        PrefixTable(announced),
        placement,
        health,
        regions=PrefixTable(region_blocks),
        default_region="us-east",
    )
    build = time.perf_counter() - t0
    titles = rng.choice(N_TITLES, size=100_000, p=popularity)
    return steering, clients, titles, build


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    steering, clients, titles, build = topology(args.seed)
    rng = np.random.default_rng(args.seed + 1)
    ips = [clients[i] for i in rng.integers(0, len(clients), args.decisions)]
    ts = titles[rng.integers(0, len(titles), args.decisions)].tolist()
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
    rate = args.decisions / seconds
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
    plan_s, copies = plan_seconds(args.seed)
    print(f"fill plan, 17,770 titles on 1,000 appliances: {plan_s:.2f} s ({copies:,} copies)")
    text += (
        "\nFill plan (`openflix.cdn.fill`: copies by demand, weighted rendezvous placement within storage) "
        "for 17,770 titles on 1,000 appliances (100 sites × 10, each site storing 30% of the catalog): "
        f"**{plan_s:.2f} s** for {copies:,} copies (target ≤ 10 s).\n"
    )
    write_section(args.out, MARK, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
