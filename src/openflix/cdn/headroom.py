"""How far a nightly fill could go: references that see what no fill can, for reading a replay's ratios.

A fill decides a site's holdings before the day starts, so it can only
serve the plays that the past predicts.  Five references bound that from
different sides (each counted after the same warm-up as the policies):

* **hindsight knobs** — every candidate of a forecast grid replayed over all
  days, the best one picked by its counted ratio: what tuning the forecast
  on the answer would give (a bound on knob choice, not a policy);
* **other sites today** — each site filled from the *same day's* plays at
  every other site: perfect knowledge of that day's demand in the rest of the
  population, nothing of the site's own members;
* **both sides of the day** — each day filled from the plays of every *other*
  day, before and after it, weighted by ``decay ** distance`` in days, the
  best decay of a grid picked by its counted ratio: a popularity forecast that
  also knows the future, everything but the day itself;
* **returning members known** — each site's fill, plus up to ``K`` titles
  from the recommender's top ``K`` unwatched titles (those the fill does not
  hold) of the returning members who *do* play that day, told in advance (the
  site's ``K`` of highest summed reciprocal rank), displacing its
  least-forecast titles; the best ``K`` of a grid picked by its counted ratio:
  what personal demand could add if attendance were known (needs a
  recommender);
* **first-day share** — the share of plays by members on their first day of
  plays, of whom the past says nothing personal; and a policy's embedded
  ratio split between those plays and returning members' plays.

These answer "is the gap to the clairvoyant reference a better forecast of
popularity, or of each member's taste, away?" — see docs/benchmarks.md for
ML-100K's answer.  Each takes about as long as one nightly replay per candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from openflix.cdn.forecast import ForecastParams
from openflix.cdn.simulate import (
    DEFAULT_GRID,
    Holdings,
    Plays,
    RecommenderFactory,
    SimulationConfig,
    fill_holdings,
    forecast_plan,
    replay_nightly,
)
from openflix.recs.history import History
from openflix.recs.models.base import Recommender

__all__ = [
    "BOTH_SIDES_DECAYS",
    "RETURNING_TOP_N",
    "Headroom",
    "first_day_plays",
    "headroom",
    "split_ratio",
]

BOTH_SIDES_DECAYS: tuple[float, ...] = (0.9, 0.95, 0.98, 0.99)
"""Decays per day of distance tried by the both-sides reference."""

_Day = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""One day of the returning-members reference: forecast, members' sites, their ranked titles."""

RETURNING_TOP_N: tuple[int, ...] = (5, 10, 20, 40)
"""Titles per returning member (and most displaced per site) tried by the returning-members reference."""


@dataclass(frozen=True)
class Headroom:
    """References for one replay: counted embedded ratios, and the first-day share of counted plays."""

    hindsight_knobs: ForecastParams
    hindsight_ratio: float
    other_sites_today: float
    first_day_share: float
    both_sides_decay: float
    """The decay per day of distance that served most on the counted days."""
    both_sides_ratio: float
    returning_top_n: int | None = None
    """The ``K`` of the returning-members reference that served most (None: no recommender given)."""
    returning_ratio: float | None = None
    """The returning-members reference's counted ratio (None: no recommender given)."""


def first_day_plays(plays: Plays) -> npt.NDArray[np.bool_]:
    """``(n_plays,)``: whether each play falls on its member's first day of plays."""
    first = np.full(plays.n_members, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, plays.members, plays.days)
    return np.asarray(plays.days == first[plays.members], dtype=np.bool_)


def split_ratio(plays: Plays, hit: npt.NDArray[np.bool_], warmup_days: int) -> tuple[float, float]:
    """Counted embedded ratio of first-day plays and of returning members' plays, from per-play hits."""
    counted = plays.days >= warmup_days
    first = first_day_plays(plays)
    new, back = counted & first, counted & ~first
    return float(hit[new].mean()) if new.any() else 0.0, float(hit[back].mean()) if back.any() else 0.0


def _other_sites_today(
    plays: Plays, capacity: int, config: SimulationConfig, tie: ForecastParams
) -> Callable[[int], Holdings]:
    """Plan each day from that day's plays at the other sites; ties broken by the forecast ``tie``."""
    bounds = plays.day_bounds()
    n_sites, n_titles = plays.n_sites, plays.n_titles
    forecaster = plays.forecaster(tie)

    def plan(day: int) -> Holdings:
        lo, hi = bounds[day], bounds[day + 1]
        key = plays.sites[lo:hi] * n_titles + plays.titles[lo:hi]
        own = np.bincount(key, minlength=n_sites * n_titles).reshape(n_sites, n_titles).astype(np.float64)
        others = own.sum(axis=0)[None, :] - own
        past = forecaster.at(day)
        scale = past.max(axis=1, keepdims=True)
        past = np.divide(past, scale, out=np.zeros_like(past), where=scale > 0)
        return fill_holdings(others + 1e-3 * past, capacity, config.appliances_per_site)

    return plan


def _plays_per_day(plays: Plays) -> npt.NDArray[np.float64]:
    """``(n_days, n_titles)``: plays of each title on each day."""
    n_days, n_titles = plays.n_days, plays.n_titles
    counts = np.bincount(plays.days * n_titles + plays.titles, minlength=n_days * n_titles)
    return counts.reshape(n_days, n_titles).astype(np.float64)


def _both_sides(
    plays: Plays, per_day: npt.NDArray[np.float64], capacity: int, config: SimulationConfig, decay: float
) -> Callable[[int], Holdings]:
    """Plan each day from every other day's plays ``per_day``, weighted by ``decay ** |distance in days|``."""
    n_days, n_titles = per_day.shape

    def plan(day: int) -> Holdings:
        weight = decay ** np.abs(np.arange(n_days) - day).astype(np.float64)
        weight[day] = 0.0
        demand = np.broadcast_to(weight @ per_day, (plays.n_sites, n_titles))
        return fill_holdings(demand, capacity, config.appliances_per_site)

    return plan


class _ReturningKnown:
    """Per day: the fill's forecast, and each returning member's ranked titles the fill does not hold.

    The recommender is fit on plays before the day, refit every
    ``config.refit_days`` days (histories up to the day folded in between),
    as the ``openflix+recs`` policy's is.  "Returning": members who play that
    day and played on an earlier one.
    """

    def __init__(
        self,
        plays: Plays,
        capacity: int,
        config: SimulationConfig,
        fill: ForecastParams,
        factory: RecommenderFactory,
        depth: int,
    ) -> None:
        self.plays, self.capacity, self.config, self.fill = plays, capacity, config, fill
        self.factory, self.depth = factory, depth
        self.data = plays.interactions()
        self.bounds = plays.day_bounds()
        self.model: Recommender | None = None
        self.fitted_day = -(10**9)
        self.site_of = np.zeros(plays.n_members, dtype=np.int64)
        self.site_of[plays.members] = plays.sites
        self.days: dict[int, _Day] = {}
        self.forecaster = plays.forecaster(fill)

    def _day(self, day: int) -> _Day:
        """The forecast ``(n_sites, n_titles)``, and the returning members' sites ``(m,)`` and their top
        ``depth`` titles not held at their site ``(m, depth)`` (-1 where fewer)."""
        if day in self.days:
            return self.days[day]
        p = self.plays
        demand = self.forecaster.at(day)
        lo, hi = int(self.bounds[day]), int(self.bounds[day + 1])
        members = np.intersect1d(p.members[lo:hi], p.members[:lo])
        top = np.full((members.size, self.depth), -1, dtype=np.int64)
        if members.size:
            past = self.data.subset(np.arange(lo))
            if self.model is None or day - self.fitted_day >= self.config.refit_days:
                self.model = self.factory().fit(past)
                self.fitted_day = day
            history = History.from_interactions(past).rows(members)
            scores = np.array(self.model.score(history), dtype=np.float64)
            rows, cols = history.matrix(binary=True).nonzero()
            scores[rows, cols] = -np.inf
            held = fill_holdings(demand, self.capacity, self.config.appliances_per_site)
            scores[held[self.site_of[members]]] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, : self.depth]
            top = np.where(np.isfinite(np.take_along_axis(scores, order, axis=1)), order, -1)
        self.days[day] = (demand, self.site_of[members], top)
        return self.days[day]

    def plan(self, k: int) -> Callable[[int], Holdings]:
        """Holdings when each site also stores up to ``k`` of its returning members' titles: those of
        the highest reciprocal rank in their top ``k``, summed over the site's members."""
        n_sites, n_titles = self.plays.n_sites, self.plays.n_titles

        def plan(day: int) -> Holdings:
            demand, sites, top = self._day(day)
            top = top[:, :k]
            keep = top >= 0
            weight = 1.0 / (1.0 + np.broadcast_to(np.arange(top.shape[1]), top.shape)[keep])
            key = np.repeat(sites, top.shape[1]).reshape(top.shape)[keep] * n_titles + top[keep]
            votes = np.bincount(key, weights=weight, minlength=n_sites * n_titles).reshape(n_sites, n_titles)
            chosen = np.argsort(-votes, axis=1, kind="stable")[:, :k]
            site = np.repeat(np.arange(n_sites), chosen.shape[1]).reshape(chosen.shape)
            picked = np.take_along_axis(votes, chosen, axis=1) > 0
            site, chosen = site[picked], chosen[picked]
            boosted = demand.copy()  # above every forecast: the fill keeps them and drops its least
            boosted[site, chosen] = demand.max() + 1.0 + votes[site, chosen]
            return fill_holdings(boosted, self.capacity, self.config.appliances_per_site)

        return plan


def headroom(
    plays: Plays,
    config: SimulationConfig | None = None,
    *,
    grid: Sequence[ForecastParams] = DEFAULT_GRID,
    tie: ForecastParams | None = None,
    decays: Sequence[float] = BOTH_SIDES_DECAYS,
    recommender: RecommenderFactory | None = None,
    top_n: Sequence[int] = RETURNING_TOP_N,
) -> Headroom:
    """The references of this module for ``plays`` (about a full nightly replay per grid candidate).

    ``tie`` is the forecast the fill uses (default: the grid's first): it
    breaks ties in the other-sites reference (titles no other site played
    that day) and is the fill the returning-members reference adds to, which
    runs only with a ``recommender`` (one model fit per ``refit_days``, one
    scoring of that day's returning members per day).
    """
    cfg = config or SimulationConfig()
    capacity = cfg.site_capacity(plays.n_titles)
    warmup = cfg.warmup_days(plays.n_days)
    counted = plays.days >= warmup

    def ratio(hit: npt.NDArray[np.bool_]) -> float:
        return float(hit[counted].mean())

    best, best_ratio = grid[0], -1.0
    for params in grid:
        hit = replay_nightly(plays, forecast_plan(plays, params, capacity, cfg))[0]
        if ratio(hit) > best_ratio:
            best, best_ratio = params, ratio(hit)
    others = replay_nightly(plays, _other_sites_today(plays, capacity, cfg, tie or grid[0]))[0]
    per_day = _plays_per_day(plays)
    sides = [ratio(replay_nightly(plays, _both_sides(plays, per_day, capacity, cfg, d))[0]) for d in decays]
    k = int(np.argmax(sides))
    first_day = float(first_day_plays(plays)[counted].mean())
    room = Headroom(best, best_ratio, ratio(others), first_day, decays[k], sides[k])
    if recommender is None or not top_n:
        return room
    known = _ReturningKnown(plays, capacity, cfg, tie or grid[0], recommender, max(top_n))
    returning = [ratio(replay_nightly(plays, known.plan(n))[0]) for n in top_n]
    j = int(np.argmax(returning))
    return replace(room, returning_top_n=top_n[j], returning_ratio=returning[j])
