"""Demand forecast: what it promises, and the running totals equal to the definition, day after day."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from openflix.cdn.forecast import Forecaster, ForecastParams, forecast_demand
from openflix.errors import DataError


class TestForecast:
    def test_demand_follows_past_plays_and_ignores_the_planned_day(self) -> None:
        sites = np.array([0, 0, 0, 1, 1])
        members = np.array([0, 0, 1, 2, 3])
        titles = np.array([0, 1, 0, 0, 2])
        days = np.array([0, 0, 1, 1, 2])
        demand = forecast_demand(sites, members, titles, days, day=2, n_sites=2, n_titles=3)
        assert demand.shape == (2, 3)
        assert demand.dtype == np.float64
        assert demand[0, 0] > demand[0, 1] > 0
        assert demand[1, 2] == 0  # played only on the planned day

    def test_titles_already_watched_by_the_sites_active_members_lose_demand(self) -> None:
        sites, members, titles, days = (np.array(v) for v in ([0, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]))
        plain = forecast_demand(sites, members, titles, days, day=1, n_sites=2, n_titles=2)
        scaled = forecast_demand(
            sites,
            members,
            titles,
            days,
            day=1,
            n_sites=2,
            n_titles=2,
            params=ForecastParams(unwatched_weight=0.5),
        )
        assert scaled[0, 0] < plain[0, 0]
        assert scaled[1, 0] == pytest.approx(plain[1, 0])  # site 1's member has not watched title 0

    def test_predicted_member_demand_adds_to_the_members_site(self) -> None:
        args = (np.array([0, 1]), np.array([0, 1]), np.array([0, 0]), np.array([0, 0]))
        predicted = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
        demand = forecast_demand(
            *args,
            day=1,
            n_sites=2,
            n_titles=3,
            params=ForecastParams(recs_weight=1.0),
            member_demand=predicted,
        )
        assert demand[0, 1] > 0 and demand[1, 1] == 0

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"titles": np.array([0, 5])}, "title indices must be in 0..2"),
            ({"sites": np.array([0, -1])}, "site indices"),
            ({"days": np.array([0])}, "one entry per play"),
            ({"members": np.array([0.5, 1.0])}, "integer array"),
        ],
    )
    def test_bad_input_is_a_clear_data_error(self, kwargs: dict[str, np.ndarray], message: str) -> None:
        args = {
            "sites": np.array([0, 1]),
            "members": np.array([0, 1]),
            "titles": np.array([0, 1]),
            "days": np.array([0, 1]),
        }
        args.update(kwargs)
        with pytest.raises(DataError, match=message):
            forecast_demand(**args, day=2, n_sites=2, n_titles=3)

    def test_out_of_range_knobs_are_refused(self) -> None:
        with pytest.raises(DataError, match="decay"):
            ForecastParams(decay=1.5)


def _by_definition(
    plays: tuple[np.ndarray, ...], day: int, n_sites: int, n_titles: int, p: ForecastParams, md: np.ndarray
) -> np.ndarray:
    """The forecast as the module docstring states it, play by play (no running totals, no sparsity)."""
    sites, members, _, days = plays
    before = days < day
    if not before.any():
        return np.zeros((n_sites, n_titles))
    n_members = max(int(members.max()) + 1, md.shape[0])
    counts = np.zeros((n_sites, n_titles))
    rate = np.zeros((n_sites, n_members))
    active = np.zeros((n_sites, n_members))
    watched = np.zeros((n_members, n_titles))
    title_first = np.full(n_titles, day)
    for s, m, t, d in zip(*(a[before] for a in plays), strict=True):
        counts[s, t] += p.decay ** (day - 1 - d)
        rate[s, m] += (1 - p.activity_decay) * p.activity_decay ** (day - 1 - d)
        watched[m, t] = 1.0
        title_first[t] = min(title_first[t], d)
    for s, m, d in {(s, m, d) for s, m, d in zip(sites[before], members[before], days[before], strict=True)}:
        active[s, m] += p.activity_decay ** (day - 1 - d)

    def exposure(n: np.ndarray) -> np.ndarray:
        return np.array([sum(p.decay**j for j in range(k)) for k in np.atleast_1d(n)])

    volume = counts.sum(axis=1) / exposure(day - days[before].min())[0]
    popularity = counts.sum(axis=0)
    if p.new_title_prior:
        popularity = popularity / (exposure(day - title_first) + p.new_title_prior)
    share = np.tile(popularity / popularity.sum(), (n_sites, 1))
    if p.local_weight:
        for s in range(n_sites):
            if counts[s].sum() > 0:
                share[s] = (1 - p.local_weight) * share[s] + p.local_weight * counts[s] / counts[s].sum()
    demand = volume[:, None] * share
    if p.unwatched_weight:
        total = active.sum(axis=1, keepdims=True)
        seen = np.divide(active @ watched, total, out=np.zeros_like(demand), where=total > 0)
        demand *= 1 - p.unwatched_weight * seen
    if p.recs_weight:
        demand += p.recs_weight * rate @ md
    return np.maximum(demand, 0.0)


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 120),
    st.integers(1, 3),
    st.integers(0, 2**32),
    st.sampled_from(
        [
            ForecastParams(),
            ForecastParams(decay=0.9, unwatched_weight=0.5, activity_decay=0.5),
            ForecastParams(decay=1.0, new_title_prior=3.0, local_weight=0.3, recs_weight=2.0),
            ForecastParams(decay=0.8, new_title_prior=1.0, unwatched_weight=1.0, recs_weight=0.5),
        ]
    ),
)
def test_a_forecaster_asked_day_after_day_gives_the_forecast_as_defined(
    n_plays: int, n_sites: int, seed: int, params: ForecastParams
) -> None:
    rng = np.random.default_rng(seed)
    n_titles, n_members = 7, 9
    members = rng.integers(0, n_members, n_plays)
    plays = (
        rng.integers(0, n_sites, n_plays),  # a member may play at several sites
        members,
        rng.integers(0, n_titles, n_plays),
        rng.integers(-3, 12, n_plays),  # out of order, with gaps, negative days
    )
    md = rng.dirichlet(np.ones(n_titles), size=n_members) * (rng.random((n_members, 1)) < 0.7)
    forecaster = Forecaster(*plays, n_sites=n_sites, n_titles=n_titles, params=params)
    asked = sorted(rng.choice(np.arange(-4, 16), size=8, replace=False).tolist())
    asked += [int(rng.integers(-4, 16))]  # and once more, earlier or later: it starts over when earlier
    for day in asked:
        expected = _by_definition(plays, day, n_sites, n_titles, params, md)
        got = forecaster.at(day, member_demand=sp.csr_matrix(md))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        once = forecast_demand(
            *plays, day=day, n_sites=n_sites, n_titles=n_titles, params=params, member_demand=md
        )
        np.testing.assert_allclose(once, got, rtol=1e-9, atol=1e-12)


def test_equal_sums_added_in_another_order_are_equal_so_ties_go_by_title() -> None:
    # titles 0 and 1 have the same history spread over days in another order; day after day the
    # running totals add them in another order than the one-shot forecast, and both must tie exactly
    days = np.arange(60)
    plays = (
        np.zeros(120, dtype=np.int64),
        np.arange(120) % 5,
        np.repeat([0, 1], 60),
        np.concatenate([days, days[::-1]]),
    )
    params = ForecastParams(decay=0.93, unwatched_weight=0.3, activity_decay=0.7)
    forecaster = Forecaster(*plays, n_sites=1, n_titles=2, params=params)
    for day in range(1, 61):
        got = forecaster.at(day)
        once = forecast_demand(*plays, day=day, n_sites=1, n_titles=2, params=params)
        assert (got == once).all()
    assert got[0, 0] == got[0, 1]


def test_after_a_gap_longer_than_the_decay_reaches_there_is_no_demand_not_nan() -> None:
    # 0.8 ** 4000 is 0 in floating point: every share was 0 / 0, and the fill failed on NaN demand
    plays = (np.zeros(3, dtype=np.int64), np.arange(3), np.array([0, 1, 1]), np.zeros(3, dtype=np.int64))
    demand = forecast_demand(*plays, day=4_000, n_sites=1, n_titles=2, params=ForecastParams(decay=0.8))
    assert demand.tolist() == [[0.0, 0.0]]
    assert forecast_demand(*plays, day=40, n_sites=1, n_titles=2, params=ForecastParams(decay=0.8))[0, 1] > 0


def test_a_log_too_big_for_one_dense_product_gives_the_same_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    from openflix.cdn import forecast

    rng = np.random.default_rng(7)
    members = rng.integers(0, 30, 400)
    plays = (members % 3, members, rng.integers(0, 12, 400), rng.integers(0, 20, 400))
    params = ForecastParams(decay=0.9, unwatched_weight=0.7, activity_decay=0.6)
    dense = [forecast_demand(*plays, day=d, n_sites=3, n_titles=12, params=params) for d in (5, 21)]
    monkeypatch.setattr(forecast, "_DENSE_PAIRS", 0)  # every product sparse, as for a log of millions
    sparse = Forecaster(*plays, n_sites=3, n_titles=12, params=params)
    for day, expected in zip((5, 21), dense, strict=True):
        np.testing.assert_allclose(sparse.at(day), expected, rtol=1e-9, atol=1e-12)
        assert (expected < forecast_demand(*plays, day=day, n_sites=3, n_titles=12)).any()  # watched: less
