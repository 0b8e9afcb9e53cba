"""Steering: tiers, health, placement, ties and fallbacks on a small hand-made topology."""

from __future__ import annotations

import gc
import sys
from typing import Any

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
    stored = [*holders.bitmaps.values(), *holders.lists.values()]
    assert stored and not any(gc.is_tracked(b) for b in stored)  # nothing for the collector to walk
    s = steering({7: [101]})
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7).choices] == [101]
    moved = s.with_placement(Holders.from_sets({7: [102, 111]}))  # other slots: bits recomputed
    assert [c.appliance_id for c in moved.decide("198.51.100.7", 7).choices] == [102, 111]
    assert [c.appliance_id for c in s.decide("198.51.100.7", 7).choices] == [101]  # the original stands


# A larger fleet: 27 appliances with scattered ids (masks over 4 bytes), three exchange appliances per
# region (so the side scanning the fewer holders is taken with several candidates), a prefix announced
# to two sites of one ISP.
BIG_SITES = [
    Site(1, "a-paris", SiteKind.EMBEDDED, "eu"),
    Site(2, "a-lyon", SiteKind.EMBEDDED, "eu"),
    Site(3, "b-nyc", SiteKind.EMBEDDED, "us"),
    Site(10, "ix-fra", SiteKind.EXCHANGE, "eu"),
    Site(11, "ix-ams", SiteKind.EXCHANGE, "eu"),
    Site(20, "ix-ash", SiteKind.EXCHANGE, "us"),
    Site(30, "ix-sin", SiteKind.EXCHANGE, "ap"),
]
BIG_APPLIANCES = [
    Appliance(7 + 1_000_003 * i, site, f"a{i}.example")
    for i, site in enumerate(
        [1, 1, 1, 2, 2, 3, 3, 3, 10, 10, 10, 11, 11, 11, 20, 20, 20, 20, 30, 30, 30, 1, 2, 3, 10, 20, 30]
    )
]
BIG_ANNOUNCED = [
    Announcement("198.51.100.0/24", "a", 1),
    Announcement("198.51.100.0/24", "a", 2),
    Announcement("203.0.113.0/24", "b", 3),
]
BIG_REGIONS = PrefixTable([Announcement("192.0.2.0/24", "us", 0), Announcement("192.0.3.0/24", "ap", 0)])
BIG_IPS = ["198.51.100.7", "203.0.113.5", "192.0.2.10", "192.0.3.9", "8.8.8.8"]


def _big_reference(
    placement: dict[int, list[int]], health: dict[int, Health], ip: str, title: int, n: int
) -> list[int]:
    site = {s.id: s for s in BIG_SITES}
    usable = sorted(
        (a for a in BIG_APPLIANCES if health[a.id].healthy), key=lambda a: (-health[a.id].headroom, a.id)
    )
    match = PrefixTable(BIG_ANNOUNCED).lookup(ip)
    where = BIG_REGIONS.lookup(ip)
    region = site[match.sites[0]].region if match else (where.isp if where else "eu")
    held = [a for a in usable if a.id in placement.get(title, [])]
    embedded = [a.id for a in held if match and a.site_id in match.sites]
    exchange = [a for a in held if site[a.site_id].kind is SiteKind.EXCHANGE]
    home = [a.id for a in exchange if site[a.site_id].region == region]
    away = [a.id for a in exchange if site[a.site_id].region != region]
    return (embedded + home + away)[:n]


@given(
    holders=st.dictionaries(
        st.integers(1, 5), st.lists(st.sampled_from([a.id for a in BIG_APPLIANCES]), unique=True), max_size=5
    ),
    headroom=st.lists(st.floats(0.0, 1.0), min_size=len(BIG_APPLIANCES), max_size=len(BIG_APPLIANCES)),
    healthy=st.lists(st.booleans(), min_size=len(BIG_APPLIANCES), max_size=len(BIG_APPLIANCES)),
    n=st.integers(1, 12),
    order=st.randoms(use_true_random=False),
)
def test_every_way_of_building_the_placement_answers_what_the_rules_say(
    holders: dict[int, list[int]], headroom: list[float], healthy: list[bool], n: int, order: Any
) -> None:
    """from_sets, from_arrays given in any order, slots in any order (as an advanced placement has
    them) and a placement swapped in later all answer the brute-force reading of the rules."""
    health = {a.id: Health(ok, h) for a, ok, h in zip(BIG_APPLIANCES, healthy, headroom, strict=True)}
    held = {a.id: [t for t, ids in holders.items() if a.id in ids] for a in BIG_APPLIANCES}
    shuffled = list(held.items())
    order.shuffle(shuffled)
    from_sets = Holders.from_sets(holders)
    slots = list(from_sets.slots)
    order.shuffle(slots)
    slot = {a: i for i, a in enumerate(slots)}
    permuted = Holders.from_slots(slots, {t: [slot[a] for a in ids] for t, ids in holders.items()})

    def build(placement: Any) -> Steering:
        return Steering(BIG_SITES, BIG_APPLIANCES, PrefixTable(BIG_ANNOUNCED), placement, health,
                        regions=BIG_REGIONS, default_region="eu")  # fmt: skip

    ways = [
        build(from_sets),
        build(Holders.from_arrays({a: np.array(t, dtype=np.int64) for a, t in shuffled})),
        build(permuted),
        build({}).with_placement(permuted),
        build(permuted).with_placement(from_sets),
    ]
    for ip in BIG_IPS:
        for title in range(1, 7):
            want = _big_reference(holders, health, ip, title, n)
            for k, s in enumerate(ways):
                assert [c.appliance_id for c in s.decide(ip, title, n).choices] == want, (k, ip, title)


def test_bits_are_slots_in_order_past_one_byte() -> None:
    """Bit i of a bitmap is slots[i], for any number of appliances and any ids."""
    ids = [3 + 7919 * i for i in range(20)]
    holders = Holders.from_arrays({a: np.array([1, 2 + i % 2], dtype=np.int64) for i, a in enumerate(ids)})

    def bits(title: int) -> int:
        return int.from_bytes(holders.bitmaps[title], "little")

    assert holders.slots == tuple(ids) and holders.width == 3 and bits(1) == 2**20 - 1
    assert (
        holders.copies == 40 and Steering(SITES, APPLIANCES, PrefixTable([]), holders, {}).holders is holders
    )
    assert bits(2) == sum(1 << i for i in range(0, 20, 2)) and holders.holding(3) == frozenset(ids[1::2])
    assert sorted(memoryview(holders.lists[2]).cast("I")) == list(range(0, 20, 2))
    assert Holders.from_sets(holders.as_sets()).bitmaps == holders.bitmaps


def test_a_large_fleet_packs_its_bits_without_the_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import openflix.cdn.steering as core

    rng = np.random.default_rng(3)
    held = {int(a): np.unique(rng.integers(0, 500, 120)) for a in rng.choice(10**9, 70, replace=False)}
    small = Holders.from_arrays(held)
    monkeypatch.setattr(core, "MATRIX_MAX", 0)
    big = Holders.from_arrays(held)
    assert big.bitmaps == small.bitmaps and big.lists == small.lists and big.slots == small.slots


def _consistent(holders: Holders) -> dict[int, frozenset[int]]:
    """Every bitmap has the holders' width and the same bits as its title's list (no slot twice)."""
    assert holders.bitmaps.keys() == holders.lists.keys()
    for title, bitmap in holders.bitmaps.items():
        listed = list(memoryview(holders.lists[title]).cast("I"))
        bits = int.from_bytes(bitmap, "little")
        assert len(bitmap) == holders.width and listed, title
        assert len(set(listed)) == len(listed) and bits == sum(1 << i for i in listed), title
    return holders.as_sets()


@given(
    before=st.dictionaries(st.integers(1, 6), st.sets(st.integers(100, 112)), max_size=6),
    changes=st.dictionaries(
        st.integers(100, 120),  # 100..112 may hold titles already, 113..120 never do before
        st.tuples(st.lists(st.integers(1, 8)), st.lists(st.integers(1, 8))),
        max_size=10,
    ),
)
def test_a_changed_placement_is_the_one_read_whole(
    before: dict[int, set[int]], changes: dict[int, tuple[list[int], list[int]]]
) -> None:
    """Titles gained and lost by some appliances (new ones among them, across byte boundaries; titles
    lost that were not held, gained that were) give what reading the new placement whole gives."""
    want = {t: set(ids) for t, ids in before.items()}
    for a, (gained, lost) in changes.items():
        for t in lost:
            want.get(t, set()).discard(a)
        for t in gained:
            want.setdefault(t, set()).add(a)
    old = Holders.from_sets(before)
    new = old.changed(changes)
    assert _consistent(new) == {t: frozenset(ids) for t, ids in want.items() if ids}
    assert _consistent(old) == {t: frozenset(ids) for t, ids in before.items() if ids}  # old one unchanged
    assert new.slots[: len(old.slots)] == old.slots  # kept slots keep their bits


def test_a_slot_number_found_across_two_others_bytes_is_not_taken_for_it() -> None:
    """Slot 256's bytes (00 01 00 00) also start at byte 3 of the list 0, 1, 256."""
    ids = list(range(1000, 1300))
    holders = Holders.from_slots(ids, {7: [0, 1, 256]})
    assert holders.lists[7].find((256).to_bytes(4, sys.byteorder)) == 3
    assert _consistent(holders.changed({ids[256]: ([], [7])})) == {7: frozenset({1000, 1001})}
    assert _consistent(holders.changed({ids[1]: ([], [7])})) == {7: frozenset({1000, 1256})}
    broken = Holders(holders.slots, holders.bitmaps, {7: holders.lists[7][:8]})  # slot 256 not listed
    with pytest.raises(DataError, match="title 7: its bitmap has slot 256 but its list does not"):
        broken.changed({ids[256]: ([], [7])})
    with pytest.raises(DataError, match=r"title 8: slot numbers must be in 0\.\.299 \(got \[300\]\)"):
        Holders.from_slots(ids, {8: [300]})
