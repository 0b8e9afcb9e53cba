"""Fill planning: copies by demand, weighted rendezvous placement, small churn, manifests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openflix.cdn.fill import copies_for, manifests, place, scores
from openflix.errors import DataError


def test_more_demand_gets_more_copies_within_the_sites_storage() -> None:
    demand = 1.0 / np.arange(1, 1001)
    copies = copies_for(demand, n_appliances=8, capacity=600)
    assert copies.sum() <= 600
    share = demand / demand.sum()
    assert copies[0] == np.ceil(share[0] * 8) == 2  # 13% of the site's plays: two appliances' worth
    assert copies[0] >= copies[10] >= copies[500] == 1
    assert (np.diff(copies) <= 0).all()  # demand is sorted, so copies are too
    assert copies[-1] == 0  # the tail does not fit
    assert copies_for(np.zeros(5), 4, 100).sum() == 0
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(DataError, match="demand must be finite and >= 0"):
            copies_for([1.0, bad], 4, 10)


def _copies_in_demand_order(demand: np.ndarray, n_appliances: int, capacity: float) -> np.ndarray:
    """Copies as their definition reads: titles in order of demand (ties by index), each taking its
    copies while they fit (how :func:`copies_for` computed it before it sorted only the ones that fit)."""
    copies = np.zeros(demand.size, dtype=np.int64)
    total, used = demand.sum(), 0
    if total <= 0:
        return copies
    for i in np.argsort(-demand, kind="stable"):
        if demand[i] <= 0:
            break
        want = int(min(max(np.ceil(demand[i] / total * n_appliances), 1), n_appliances))
        if used + want > int(capacity):
            break
        copies[i], used = want, used + want
    return copies


@settings(deadline=None, max_examples=80)
@given(st.integers(1, 400), st.integers(1, 6), st.floats(0, 500), st.integers(0, 2**32))
def test_copies_are_titles_in_order_of_demand_taking_their_copies_while_they_fit(
    n_titles: int, n_appliances: int, capacity: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    demand = rng.integers(0, 4, size=n_titles) * rng.choice([1.0, 0.01, 100.0])  # many ties, some zeros
    demand[: n_titles // 10] = rng.pareto(1.0, size=n_titles // 10)  # and a few heavy titles
    expected = _copies_in_demand_order(demand, n_appliances, capacity)
    assert copies_for(demand, n_appliances, capacity).tolist() == expected.tolist()


def test_every_title_gets_its_copies_on_distinct_appliances_and_no_appliance_overflows() -> None:
    titles = np.arange(2_000)
    copies = np.where(titles < 200, 3, 1)
    plan = place(titles, copies, [1, 2, 3, 4, 5], [700, 700, 700, 700, 700])
    assert all(len(v) <= 700 for v in plan.values())
    count = np.zeros(len(titles), dtype=int)
    for held in plan.values():
        assert len(set(held.tolist())) == len(held)
        count[held] += 1
    assert (count == copies).all()


def test_capacity_weights_the_share() -> None:
    titles = np.arange(20_000)
    plan = place(titles, np.ones_like(titles), [1, 2, 3], [40_000, 20_000, 20_000])
    shares = np.array([len(plan[a]) for a in (1, 2, 3)]) / len(titles)
    assert shares[0] == pytest.approx(0.5, abs=0.02) and shares[1] == pytest.approx(0.25, abs=0.02)


@settings(deadline=None, max_examples=25)
@given(st.integers(4, 12), st.integers(0, 10_000))
def test_removing_or_adding_one_of_n_appliances_moves_about_one_nth(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    titles = np.sort(rng.choice(10**6, size=6_000, replace=False))
    copies = np.ones(len(titles), dtype=np.int64)
    ids = list(range(100, 100 + n))
    caps = [10**6] * n  # storage not binding: pure rendezvous
    before = place(titles, copies, ids, caps)
    where = {int(t): a for a, held in before.items() for t in held.tolist()}

    removed = ids[seed % n]
    after = place(titles, copies, [a for a in ids if a != removed], caps[:-1])
    moved = sum(1 for a, held in after.items() for t in held.tolist() if where[int(t)] != a)
    assert moved == len(before[removed])  # only the removed appliance's titles move
    assert moved / len(titles) == pytest.approx(1 / n, abs=0.03)

    grown = place(titles, copies, [*ids, 999], [*caps, 10**6])
    moved = sum(1 for a, held in grown.items() for t in held.tolist() if where[int(t)] != a)
    assert moved == len(grown[999])  # titles move only onto the new appliance
    assert moved / len(titles) == pytest.approx(1 / (n + 1), abs=0.03)


@settings(deadline=None, max_examples=20)
@given(st.integers(4, 12), st.integers(0, 10_000))
def test_with_full_mixed_appliances_and_real_copies_one_of_n_moves_about_its_share(n: int, seed: int) -> None:
    """The site 90% full, capacities of 200/400/600 titles, copies by Zipf demand: removing an
    appliance re-places about its share of the copies; adding one takes about its share away from the
    others, and the rest of the content stays where it was."""
    rng = np.random.default_rng(seed)
    caps = rng.choice([200.0, 400.0, 600.0], size=n)
    titles = np.arange(5_000)
    demand = 1.0 / np.arange(1, 5_001) ** 0.9
    ids = list(range(100, 100 + n))

    def copies(where: list[int], capacities: np.ndarray) -> set[tuple[int, int]]:
        plan = place(titles, copies_for(demand, len(where), capacities.sum() * 0.9), where, capacities)
        return {(a, int(t)) for a, held in plan.items() for t in held.tolist()}

    before = copies(ids, caps)
    gone = seed % n
    keep = [i for i in range(n) if i != gone]
    after = copies([ids[i] for i in keep], caps[keep])
    _about(len(after - before) / len(after), caps[gone] / caps.sum())
    grown_caps = np.append(caps, 400.0)
    grown = copies([*ids, 999], grown_caps)
    _about(len(before - grown) / len(before), 400.0 / grown_caps.sum())


def _about(moved: float, share: float) -> None:
    """Within a fifth of the share (a full site re-places a little more: copies cascade), plus 0.01.

    Scanned over 900 cases here: removals moved 0.82-1.19 times the share, additions 0.88-1.05; a
    hash that is not consistent (title mod N) moves nearly everything."""
    assert 0.8 * share - 0.01 <= moved <= 1.2 * share + 0.01, (moved, share)


def test_day_over_day_churn_is_only_what_demand_changed() -> None:
    titles = np.arange(3_000)
    ids, caps = [1, 2, 3, 4], [500, 500, 500, 500]
    demand = 1.0 / np.arange(1, 3_001)
    today = place(titles, copies_for(demand, 4, 2_000), ids, caps)
    tomorrow_demand = demand.copy()
    tomorrow_demand[[5, 6]] = tomorrow_demand[[6, 5]]  # two titles swap places
    tomorrow = place(titles, copies_for(tomorrow_demand, 4, 2_000), ids, caps)
    changes = manifests(today, tomorrow)
    churn = sum(len(m.add) + len(m.delete) for m in changes)
    assert churn <= 20
    again = manifests(today, today)
    assert all(len(m.add) == len(m.delete) == 0 for m in again)


def test_manifests_say_what_to_add_and_delete() -> None:
    [m] = manifests({7: [1, 2, 3]}, {7: [2, 3, 4]})
    assert m.appliance_id == 7 and m.add.tolist() == [4] and m.delete.tolist() == [1]
    [gone] = manifests({8: [1]}, {})
    assert gone.delete.tolist() == [1] and gone.add.tolist() == []


def test_zero_or_negative_capacity_is_refused() -> None:
    with pytest.raises(DataError, match="capacities must be > 0"):
        place([1], [1], [1, 2], [10, 0])


def test_a_capacity_beyond_any_count_of_titles_holds_every_title() -> None:
    # a tiny title size (OPENFLIX_TITLE_GB=1e-300) makes a capacity of about 1e303 titles: it wrapped
    # below 0 as an int64 and the site was emptied
    titles = np.arange(50)
    plan = place(titles, np.ones_like(titles), [1, 2], [1e303, 1e303])
    assert sorted(np.concatenate(list(plan.values())).tolist()) == titles.tolist()
    assert copies_for(np.ones(50), 2, 2e303).sum() == 50


def _place_title_by_title(
    titles: np.ndarray, copies: np.ndarray, appliance_ids: list[int], capacities: list[float]
) -> dict[int, list[int]]:
    """The placement as its definition reads: most-copied first, each title its preferred appliances
    that still have room (how :func:`place` computed it before it worked a stretch of titles at once)."""
    preference = np.argsort(scores(titles, appliance_ids, capacities), axis=1, kind="stable")
    room = np.floor(capacities).astype(int)
    held: dict[int, list[int]] = {a: [] for a in appliance_ids}
    for i in np.argsort(-copies, kind="stable"):
        k = int(copies[i])
        for j in preference[i]:
            if k <= 0:
                break
            if room[j] > 0:
                held[appliance_ids[j]].append(int(titles[i]))
                room[j] -= 1
                k -= 1
    return {a: sorted(v) for a, v in held.items()}


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 3_000),  # past the first window of 1,024 titles
    st.integers(1, 12),
    st.integers(0, 2**32),
    st.sampled_from([1, 2, 12]),
)
def test_placement_is_each_title_in_turn_taking_its_preferred_appliances_with_room(
    n_titles: int, n_appliances: int, seed: int, most_copies: int
) -> None:
    rng = np.random.default_rng(seed)
    titles = rng.choice(10**9, size=n_titles, replace=False)
    copies = rng.integers(0, most_copies + 1, size=n_titles)
    ids = [int(a) for a in rng.choice(10**6, size=n_appliances, replace=False)]
    capacities = list(rng.uniform(0.5, max(1.0, 2 * n_titles / n_appliances), size=n_appliances))
    plan = place(titles, copies, ids, capacities)
    assert {a: v.tolist() for a, v in plan.items()} == _place_title_by_title(titles, copies, ids, capacities)
