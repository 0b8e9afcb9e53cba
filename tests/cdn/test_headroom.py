"""Headroom references: what a fill that saw more than the past would serve."""

from __future__ import annotations

import numpy as np

from openflix.cdn.forecast import ForecastParams
from openflix.cdn.headroom import first_day_plays, headroom, split_ratio
from openflix.cdn.simulate import Plays, SimulationConfig, simulate
from openflix.recs.models.ease import EASE

DAY = 86_400
FAST = SimulationConfig(popularity_decays=(0.9,), appliances_per_site=2, storage_share=0.1)
GRID = (ForecastParams(decay=0.5), ForecastParams(decay=0.99))


def fads(seed: int = 0, n_days: int = 30, n_titles: int = 400, per_day: int = 160) -> Plays:
    """Each day the whole population plays that day's 20 fad titles, new every day: the past says nothing."""
    rng = np.random.default_rng(seed)
    members, titles, times = [], [], []
    for day in range(n_days):
        fad = rng.choice(n_titles, size=20, replace=False)
        for k in range(per_day):
            members.append(day * per_day + k)
            titles.append(int(fad[k % 20]))
            times.append(day * DAY + int(rng.integers(0, DAY)))
    return Plays.from_arrays(np.array(members), np.array(titles), np.array(times), n_titles=n_titles)


def test_first_day_plays_are_those_on_each_members_first_day_of_plays() -> None:
    plays = Plays.from_arrays(
        np.array([1, 1, 2, 1, 2]), np.array([0, 1, 2, 3, 4]), np.array([0, 10, DAY, DAY + 5, 3 * DAY])
    )
    assert first_day_plays(plays).tolist() == [True, True, True, False, False]


def test_a_population_wide_fad_is_caught_by_the_other_sites_reference_not_by_any_forecast() -> None:
    plays = fads()
    room = headroom(plays, FAST, grid=GRID)
    assert room.other_sites_today > 0.95
    assert room.hindsight_ratio < 0.2
    assert room.first_day_share == 1.0  # every member plays on one day only
    assert room.returning_ratio is None and room.returning_top_n is None  # no recommender given


def test_the_hindsight_knobs_are_the_best_grid_candidate_on_the_counted_days() -> None:
    rng = np.random.default_rng(1)
    n = 6_000
    weights = 1.0 / np.arange(1, 301)
    plays = Plays.from_arrays(
        rng.integers(0, 400, n), rng.choice(300, n, p=weights / weights.sum()), rng.integers(0, 40 * DAY, n)
    )
    room = headroom(plays, FAST, grid=GRID)
    ratios = [simulate(plays, config=FAST, policies=["openflix"], forecast=g, recommender=None) for g in GRID]
    best = max(r.policy("openflix").embedded_ratio for r in ratios)
    assert room.hindsight_ratio == best
    assert room.hindsight_knobs in GRID


def test_both_sides_sees_a_title_that_runs_for_a_week_from_its_first_day() -> None:
    """Background plays spread thin, plus weekly "premieres" played by everyone for seven days.

    A forecast from the past misses each premiere's first day; the both-sides
    reference sees it coming from the days after, so it serves more.
    """
    rng = np.random.default_rng(3)
    n_days, n_titles = 42, 400
    members, titles, times = [], [], []
    for day in range(n_days):
        premiere = 300 + day // 7
        for k in range(150):
            members.append(day * 150 + k)
            titles.append(premiere if k < 60 else int(rng.integers(0, 300)))
            times.append(day * DAY + int(rng.integers(0, DAY)))
    plays = Plays.from_arrays(np.array(members), np.array(titles), np.array(times), n_titles=n_titles)
    room = headroom(plays, FAST, grid=GRID, decays=(0.5, 0.9))
    assert room.both_sides_decay in (0.5, 0.9)
    assert room.both_sides_ratio > room.hindsight_ratio + 0.02


def test_split_ratios_weigh_back_to_the_policys_ratio() -> None:
    rng = np.random.default_rng(2)
    n = 5_000
    plays = Plays.from_arrays(rng.integers(0, 300, n), rng.integers(0, 200, n), rng.integers(0, 30 * DAY, n))
    result = simulate(plays, config=FAST, policies=["openflix"], forecast=GRID[1], recommender=None)
    policy = result.policy("openflix")
    assert policy.hit is not None
    new, back = split_ratio(plays, policy.hit, result.warmup_days)
    counted = plays.days >= result.warmup_days
    share = first_day_plays(plays)[counted].mean()
    assert abs(share * new + (1 - share) * back - policy.embedded_ratio) < 1e-12


def sequels(seed: int, n_days: int = 30, per_day: int = 40) -> Plays:
    """Each member plays one of 60 "first parts" and four of 30 hits; every other member comes back the
    next day for the sequel of their first part: too rare to fill by popularity, obvious per member."""
    rng = np.random.default_rng(seed)
    members, titles, times = [], [], []
    for day in range(n_days):
        for k in range(per_day):
            member, part = day * per_day + k, int(rng.integers(0, 60))
            start = day * DAY + int(rng.integers(0, DAY // 2))
            for j, title in enumerate([200 + part, *rng.choice(30, size=4, replace=False).tolist()]):
                members.append(member)
                titles.append(title)
                times.append(start + j)
            if day + 1 < n_days and k % 2 == 0:
                members.append(member)
                titles.append(300 + part)
                times.append((day + 1) * DAY + int(rng.integers(0, DAY)))
    return Plays.from_arrays(np.array(members), np.array(titles), np.array(times), n_titles=400)


def test_knowing_who_comes_back_serves_the_sequels_the_recommender_predicts() -> None:
    plays = sequels(seed=0)
    room = headroom(
        plays,
        FAST,
        grid=GRID,
        tie=GRID[1],
        decays=(0.9,),
        recommender=lambda: EASE(l2=10.0),
        top_n=(1, 5, 10),
    )
    fill = simulate(plays, config=FAST, policies=["openflix"], forecast=GRID[1], recommender=None)
    assert room.returning_top_n in (5, 10)  # one sequel per returning member: a site needs several
    assert room.returning_ratio is not None
    assert room.returning_ratio > fill.policy("openflix").embedded_ratio + 0.04
