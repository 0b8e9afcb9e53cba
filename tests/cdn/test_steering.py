"""Steering: tiers, health, placement, ties and fallbacks on a small hand-made topology."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openflix.cdn.inventory import Appliance, ApplianceStatus, Site, SiteKind
from openflix.cdn.prefixes import Announcement, PrefixTable
from openflix.cdn.steering import Health, Holders, Steering, Tier
from openflix.errors import DataError

SITES = [
    Site(1, "isp-a-paris", SiteKind.EMBEDDED, "eu"),
    Site(2, "isp-a-lyon", SiteKind.EMBEDDED, "eu"),
    Site(3, "isp-b-berlin", SiteKind.EMBEDDED, "eu"),
    Site(10, "ix-frankfurt", SiteKind.EXCHANGE, "eu"),
    Site(20, "ix-ashburn", SiteKind.EXCHANGE, "us"),
]
APPLIANCES = [
    Appliance(101, 1, "a101.example"),
    Appliance(102, 1, "a102.example"),
    Appliance(103, 2, "a103.example"),
    Appliance(104, 3, "a104.example"),
    Appliance(110, 10, "a110.example"),
    Appliance(111, 10, "a111.example"),
    Appliance(120, 20, "a120.example"),
]
ANNOUNCED = [
    Announcement("198.51.100.0/24", "isp-a", 1),
    Announcement("198.51.100.0/24", "isp-a", 2),
    Announcement("198.51.100.128/25", "isp-a", 2),  # nested: longest match wins
    Announcement("203.0.113.0/24", "isp-b", 3),
    Announcement("2001:db8:a::/48", "isp-a", 1),
]
REGIONS = PrefixTable([Announcement("192.0.2.0/24", "us", 0)])


def steering(placement: dict[int, list[int]] | None = None, **changes: object) -> Steering:
    health = {a.id: Health(True, 0.5) for a in APPLIANCES}
    health.update(changes.pop("health", {}))  # type: ignore[call-overload]
    appliances = changes.pop("appliances", APPLIANCES)
    every = [a.id for a in APPLIANCES]
    return Steering(
        SITES,
        appliances,  # type: ignore[arg-type]
        PrefixTable(ANNOUNCED),
        placement if placement is not None else {7: every},
        health,
        regions=REGIONS,
        default_region="eu",
    )


def test_embedded_first_then_the_regions_exchange_then_other_regions() -> None:
    d = steering().decide("198.51.100.7", 7, n=10)
    assert d.isp == "isp-a" and d.region == "eu"
    assert [(c.appliance_id, c.tier) for c in d.choices] == [
        (101, Tier.EMBEDDED),
        (102, Tier.EMBEDDED),
        (103, Tier.EMBEDDED),
        (110, Tier.EXCHANGE),
        (111, Tier.EXCHANGE),
        (120, Tier.REMOTE),
    ]
    assert 104 not in [c.appliance_id for c in d.choices]  # another ISP's embedded appliance


def test_longest_prefix_wins_and_ipv6_and_mapped_addresses_work() -> None:
    s = steering()
    assert [c.appliance_id for c in s.decide("198.51.100.200", 7, n=1).choices] == [103]
    assert [c.appliance_id for c in s.decide("2001:db8:a::1", 7, n=2).choices] == [101, 102]
    assert s.decide("::ffff:198.51.100.7", 7).isp == "isp-a"


def test_within_a_tier_more_headroom_first_ties_by_id() -> None:
    s = steering(health={102: Health(True, 0.9), 111: Health(True, 0.9)})
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7, n=5).choices] == [102, 101, 103, 111, 110]


@pytest.mark.parametrize(
    "status", [ApplianceStatus.DRAINING, ApplianceStatus.OFFLINE, ApplianceStatus.FAILED]
)
def test_only_active_healthy_reporting_appliances(status: ApplianceStatus) -> None:
    appliances = [
        Appliance(a.id, a.site_id, a.hostname, status if a.id == 101 else a.status) for a in APPLIANCES
    ]
    health = {a.id: Health(True, 0.5) for a in APPLIANCES if a.id != 102}  # 102: no fresh report
    health[103] = Health(False, 0.9)
    s = Steering(SITES, appliances, PrefixTable(ANNOUNCED), {7: [a.id for a in APPLIANCES]}, health)
    chosen = [c.appliance_id for c in s.decide("198.51.100.7", 7, n=10).choices]
    assert 101 not in chosen and 102 not in chosen and 103 not in chosen
    assert chosen[0] == 110


def test_only_appliances_holding_the_title_and_origin_when_none_do() -> None:
    s = steering({7: [103, 120], 8: []})
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7).choices] == [103, 120]
    assert s.decide("198.51.100.7", 8).origin and s.decide("198.51.100.7", 9).origin


def test_unknown_addresses_fall_back_to_their_region_or_the_default() -> None:
    s = steering()
    us = s.decide("192.0.2.10", 7, n=2)
    assert us.isp is None and us.region == "us"
    assert [(c.appliance_id, c.tier) for c in us.choices] == [(120, Tier.EXCHANGE), (110, Tier.REMOTE)]
    elsewhere = s.decide("8.8.8.8", 7, n=1)
    assert elsewhere.region == "eu" and elsewhere.choices[0].appliance_id == 110


def test_deterministic() -> None:
    assert steering().decide("198.51.100.7", 7) == steering().decide("198.51.100.7", 7)


def test_bad_addresses_and_prefixes_are_clear_errors() -> None:
    with pytest.raises(DataError, match="not an IPv4 or IPv6 address"):
        steering().decide("300.1.1.1", 7)
    with pytest.raises(DataError, match="not a network in CIDR form"):
        PrefixTable([Announcement("10.0.0.1/8", "x", 1)])
    with pytest.raises(DataError, match="announced by ISP 'isp-a' and by ISP 'isp-z'"):
        PrefixTable(
            [*ANNOUNCED, Announcement("203.0.113.0/24", "isp-z", 3).__class__("198.51.100.0/24", "isp-z", 3)]
        )


def _reference(
    placement: dict[int, list[int]], health: dict[int, Health], ip: str, title: int, n: int
) -> list[int]:
    """What steering must answer, by brute force over every appliance."""
    usable = sorted(
        (a for a in APPLIANCES if health[a.id].healthy), key=lambda a: (-health[a.id].headroom, a.id)
    )
    site = {s.id: s for s in SITES}
    match = PrefixTable(ANNOUNCED).lookup(ip)
    where = REGIONS.lookup(ip)
    region = site[match.sites[0]].region if match else (where.isp if where else "eu")
    held = [a for a in usable if a.id in placement.get(title, [])]
    embedded = [a.id for a in held if match and a.site_id in match.sites]
    exchange = [a.id for a in held if site[a.site_id].kind is SiteKind.EXCHANGE]
    home = [a for a in exchange if site[APPLIANCE_SITE[a]].region == region]
    away = [a for a in exchange if site[APPLIANCE_SITE[a]].region != region]
    return (embedded + home + away)[:n]


APPLIANCE_SITE = {a.id: a.site_id for a in APPLIANCES}
IPS = ["198.51.100.7", "198.51.100.200", "203.0.113.5", "2001:db8:a::1", "192.0.2.10", "8.8.8.8"]


@given(
    holders=st.dictionaries(
        st.integers(1, 6), st.lists(st.sampled_from([a.id for a in APPLIANCES]), unique=True), max_size=6
    ),
    headroom=st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=len(APPLIANCES), max_size=len(APPLIANCES)),
    healthy=st.lists(st.booleans(), min_size=len(APPLIANCES), max_size=len(APPLIANCES)),
    n=st.integers(1, 8),
)
def test_decisions_match_a_brute_force_reading_of_the_rules(
    holders: dict[int, list[int]], headroom: list[float], healthy: list[bool], n: int
) -> None:
    """Bitmask holders (``Holders``) answer exactly what the rules say, for any placement and health."""
    health = {a.id: Health(ok, h) for a, ok, h in zip(APPLIANCES, healthy, headroom, strict=True)}
    s = steering(holders, health=health)
    held = {a.id: sorted(t for t, ids in holders.items() if a.id in ids) for a in APPLIANCES}
    arrays = Holders.from_arrays({a: np.array(t, dtype=np.int64) for a, t in held.items()})
    via_arrays = steering(arrays, health=health)  # type: ignore[arg-type]
    for ip in IPS:
        for title in range(1, 8):
            want = _reference(holders, health, ip, title, n)
            assert [c.appliance_id for c in s.decide(ip, title, n).choices] == want, (ip, title)
            assert [c.appliance_id for c in via_arrays.decide(ip, title, n).choices] == want, (ip, title)


def test_holders_round_trip_and_a_new_placement_may_bring_new_appliances() -> None:
    sets = {7: [101, 120], 8: [110], 9: []}
    holders = Holders.from_sets(sets)
    assert holders.as_sets() == {7: frozenset({101, 120}), 8: frozenset({110})}
    assert not any(gc.is_tracked(m) for m in holders.masks.values())  # nothing for the collector to walk
    s = steering({7: [101]})
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7).choices] == [101]
    moved = s.with_placement(Holders.from_sets({7: [102, 111]}))  # other slots: bits recomputed
    assert [c.appliance_id for c in moved.decide("198.51.100.7", 7).choices] == [102, 111]
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7).choices] == [101]  # the original stands
