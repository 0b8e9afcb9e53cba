"""Offload simulation: the protocol's promises (no peeking, reference bounds) and the policies' ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openflix.cdn.fill import copies_for, place
from openflix.cdn.forecast import ForecastParams
from openflix.cdn.simulate import (
    Plays,
    SimulationConfig,
    SimulationResult,
    _replay_lru,
    fill_holdings,
    forecast_plan,
    policy_names,
    replay_nightly,
    simulate,
)
from openflix.errors import DataError

DAY = 86_400
FAST = SimulationConfig(popularity_decays=(0.9,), appliances_per_site=2)


def stable_workload(seed: int = 0, n_days: int = 40, n_titles: int = 200, per_day: int = 300) -> Plays:
    """Zipf popularity fixed over time; members arrive, play titles they have not played yet, leave."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_titles + 1) ** 0.9
    weights /= weights.sum()
    members, titles, times = [], [], []
    member = 0
    for day in range(n_days):
        for _ in range(per_day // 10):
            chosen = rng.choice(n_titles, size=10, replace=False, p=weights)
            members += [member] * 10
            titles += chosen.tolist()
            times += (day * DAY + rng.integers(0, DAY, 10)).tolist()
            member += 1
    return Plays.from_arrays(np.array(members), np.array(titles), np.array(times), n_titles=n_titles)


@pytest.fixture(scope="module")
def stable() -> Plays:
    return stable_workload()


@pytest.fixture(scope="module")
def stable_result(stable: Plays) -> SimulationResult:
    return simulate(stable, config=FAST, recommender=None)


class TestSimulate:
    def test_the_names_a_command_checks_before_a_replay_are_the_replays(
        self, stable_result: SimulationResult
    ) -> None:
        assert [p.name for p in stable_result.policies] == policy_names(FAST, with_recs=False)

    def test_clairvoyant_serves_at_least_as_many_plays_embedded_as_any_policy(
        self, stable_result: SimulationResult
    ) -> None:
        result = stable_result
        best = result.policy("clairvoyant").embedded_ratio
        others = [p.embedded_ratio for p in result.policies if p.name != "clairvoyant"]
        assert best >= max(others)

    def test_openflix_beats_lru_when_popularity_is_stable(self, stable_result: SimulationResult) -> None:
        result = stable_result
        assert result.policy("openflix").embedded_ratio > result.policy("lru").embedded_ratio + 0.02

    def test_every_play_is_served_once_by_some_tier(
        self, stable: Plays, stable_result: SimulationResult
    ) -> None:
        for p in stable_result.policies:
            assert (p.embedded + p.exchange + p.origin).sum() == stable.n_plays
            assert p.embedded_ratio + p.exchange_ratio + p.origin_ratio == pytest.approx(1.0)

    def test_the_knobs_are_chosen_without_the_counted_days(self, stable: Plays) -> None:
        changed = Plays.from_arrays(
            stable.members,
            np.where(stable.days >= 8, 0, stable.titles),
            stable.times,
            n_titles=stable.n_titles,
        )
        a = simulate(stable, config=FAST, recommender=None, policies=("openflix",))
        b = simulate(changed, config=FAST, recommender=None, policies=("openflix",))
        assert a.warmup_days == 8
        assert a.choice.forecast == b.choice.forecast
        assert a.choice.tried == b.choice.tried

    def test_a_nightly_fill_under_stable_popularity_changes_little_day_over_day(
        self, stable_result: SimulationResult
    ) -> None:
        openflix = stable_result.policy("openflix")
        assert openflix.churn is not None and 0.0 <= openflix.churn < 0.1
        assert stable_result.policy("lru").churn is None  # reactive: no nightly fill to measure

    def test_rows_and_table_name_every_policy(self, stable_result: SimulationResult) -> None:
        names = [r["policy"] for r in stable_result.rows()]
        assert names == ["lru", "popularity-0.9", "openflix", "clairvoyant"]
        assert "openflix" in stable_result.format_table()

    def test_plot_writes_a_png(self, stable_result: SimulationResult, tmp_path: Path) -> None:
        pytest.importorskip("matplotlib")
        from openflix.cdn.simulate import plot

        out = plot(stable_result, tmp_path / "offload.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lru_with_room_for_the_whole_catalog_misses_only_first_plays() -> None:
    plays = stable_workload(n_days=5)
    hit = _replay_lru(plays, capacity=plays.n_titles)
    key = plays.sites * plays.n_titles + plays.titles
    _, first = np.unique(key, return_index=True)
    expected = np.ones(plays.n_plays, dtype=bool)
    expected[first] = False
    assert (hit == expected).all()


def test_a_replay_says_each_step_as_it_starts(stable: Plays) -> None:
    from openflix.cdn.simulate import DEFAULT_GRID

    steps: list[str] = []
    policies = ("lru", "openflix")
    result = simulate(stable, config=FAST, recommender=None, policies=policies, progress=steps.append)
    candidates = [s for s in steps if s.startswith("choosing the forecast on the warm-up: candidate")]
    assert len(candidates) == len(DEFAULT_GRID) and candidates[-1].startswith(
        f"choosing the forecast on the warm-up: candidate {len(DEFAULT_GRID)}, decay"
    )
    assert steps[len(candidates) :] == ["planning the exchange site", "replaying lru", "replaying openflix"]
    assert [p.name for p in result.policies] == ["lru", "openflix"]


def test_days_without_plays_are_not_planned_and_change_no_share(stable: Plays) -> None:
    # the same plays, with three empty weeks cut in after day 10: only days with plays are planned
    later = stable.times >= stable.times.min() + 10 * DAY + DAY
    gapped = Plays.from_arrays(
        stable.members, stable.titles, stable.times + later * 21 * DAY, n_titles=stable.n_titles
    )
    plan = forecast_plan(gapped, ForecastParams(), 60, FAST)
    asked: list[int] = []
    hit, added = replay_nightly(gapped, lambda day: asked.append(day) or plan(day))
    assert asked == np.unique(gapped.days).tolist() and gapped.n_days == stable.n_days + 21
    every_day = np.concatenate([plan(d)[gapped.sites[gapped.days == d], gapped.titles[gapped.days == d]]
                                for d in range(gapped.n_days)])  # fmt: skip
    assert (hit == every_day).all()
    assert added[~np.isin(np.arange(gapped.n_days), asked)].sum() == 0


def test_a_days_fill_never_sees_that_days_plays(stable: Plays) -> None:
    day = 20
    lo = int(np.searchsorted(stable.days, day))
    titles = stable.titles.copy()
    titles[lo:] = np.random.default_rng(1).integers(0, stable.n_titles, stable.n_plays - lo)
    changed = Plays.from_arrays(stable.members, titles, stable.times, n_titles=stable.n_titles)
    params = ForecastParams(unwatched_weight=0.3, new_title_prior=5.0)
    a = forecast_plan(stable, params, 60, FAST)(day)
    b = forecast_plan(changed, params, 60, FAST)(day)
    assert (a == b).all()
    assert not (forecast_plan(changed, params, 60, FAST)(day + 1) == a).all()


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 2_000), st.integers(1, 8), st.floats(0.0, 1.0), st.integers(0, 2**32))
def test_a_site_holds_every_title_the_real_fill_places_and_no_other(
    n_titles: int, n_appliances: int, share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    demand = rng.pareto(rng.uniform(0.3, 3.0), size=(2, n_titles)) * (rng.random((2, n_titles)) < 0.8)
    capacity = int(share * n_titles)
    held = fill_holdings(demand, capacity, n_appliances)
    for site in range(2):  # the fill proper: copies by demand, then placement on the site's appliances
        per_appliance = capacity // n_appliances
        copies = copies_for(demand[site], n_appliances, per_appliance * n_appliances)
        ids = list(range(site * n_appliances, (site + 1) * n_appliances))
        plan = (
            place(np.arange(n_titles), copies, ids, [per_appliance] * n_appliances) if per_appliance else {}
        )
        placed = np.zeros(n_titles, dtype=bool)
        for stored in plan.values():
            placed[stored] = True
        assert held[site].tolist() == placed.tolist()
        assert (copies[held[site]] > 0).all() and held[site].sum() <= per_appliance * n_appliances


def test_a_site_stores_whole_titles_on_each_appliance() -> None:
    assert SimulationConfig().site_capacity(1_682) == 504  # 30%, 126 on each of 4 appliances
    assert SimulationConfig().site_capacity(9_066) == 2_716  # 30% is 2,719.8: 679 on each of 4


def test_bad_plays_are_a_clear_data_error() -> None:
    with pytest.raises(DataError, match="one entry per play"):
        Plays.from_arrays([1, 2], [0], [0, 1])
    with pytest.raises(DataError, match="no plays"):
        Plays.from_arrays([], [], [])
    with pytest.raises(DataError, match="unknown policies"):
        simulate(stable_workload(n_days=10), policies=("fifo",), recommender=None)
    with pytest.raises(DataError, match="too few"):
        simulate(Plays.from_arrays([1, 2], [0, 1], [0, DAY], n_titles=100), recommender=None)
    with pytest.raises(
        DataError, match=r"day_start must be seconds after midnight, 0\.\.86399 \(got 86400\)"
    ):
        Plays.from_arrays([1], [0], [0], day_start=DAY)


def test_a_day_starts_when_the_fill_takes_effect() -> None:
    """With days starting at 08:00 UTC, a play at 07:59 belongs to the day before and one at 08:00 to
    the next: the fill planned for a day sees the first and not the second."""
    hour = 3600
    times = [DAY + 7 * hour, DAY + 8 * hour - 1, DAY + 8 * hour, 2 * DAY + 7 * hour]
    utc = Plays.from_arrays([1, 2, 3, 4], [0, 1, 2, 3], times, n_titles=4)
    fill_time = Plays.from_arrays([1, 2, 3, 4], [0, 1, 2, 3], times, n_titles=4, day_start=8 * hour)
    assert utc.days.tolist() == [0, 0, 0, 1] and utc.first_day == 1
    assert fill_time.days.tolist() == [0, 0, 1, 1] and fill_time.first_day == 0
    assert fill_time.before(1).titles.tolist() == [0, 1]


@pytest.mark.realdata
@pytest.mark.slow
def test_movielens_100k_reproduces_the_reference_baselines(ml100k_path: Path) -> None:
    from openflix.recs.datasets import load_movielens_100k

    config = SimulationConfig(popularity_decays=(0.95,))
    result = simulate(
        load_movielens_100k(ml100k_path),
        config=config,
        policies=("lru", "popularity", "openflix", "clairvoyant"),
        forecast=ForecastParams(decay=0.99, new_title_prior=10.0, unwatched_weight=0.3, activity_decay=0.5),
        recommender=None,
    )
    assert result.n_days == 215 and result.warmup_days == 43 and result.site_capacity == 504
    ratio = {r["policy"]: r["embedded"] for r in result.rows()}
    assert ratio["lru"] == pytest.approx(0.633, abs=0.005)
    assert ratio["popularity-0.95"] == pytest.approx(0.773, abs=0.005)
    assert ratio["clairvoyant"] > 0.98
    assert ratio["openflix"] > max(ratio["lru"], ratio["popularity-0.95"])
