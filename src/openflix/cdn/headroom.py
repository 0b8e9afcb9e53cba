"""How far a nightly fill could go: references that see what no fill can, for reading a replay's ratios.

A fill decides a site's holdings before the day starts, so it can only
serve the plays that the past predicts.  Four references bound that from
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
* **first-day share** — the share of plays by members on their first day of
  plays, of whom the past says nothing personal; and a policy's embedded
  ratio split between those plays and returning members' plays.

These answer "is the gap to the clairvoyant reference a better forecast of
popularity away?" — see docs/benchmarks.md for ML-100K's answer.  Each takes
about as long as one nightly replay per candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openflix.cdn.forecast import ForecastParams, forecast_demand
from openflix.cdn.simulate import (
    DEFAULT_GRID,
    Holdings,
    Plays,
    SimulationConfig,
    fill_holdings,
    forecast_plan,
    replay_nightly,
)

__all__ = ["BOTH_SIDES_DECAYS", "Headroom", "first_day_plays", "headroom", "split_ratio"]

BOTH_SIDES_DECAYS: tuple[float, ...] = (0.9, 0.95, 0.98, 0.99)
"""Decays per day of distance tried by the both-sides reference."""


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

    def plan(day: int) -> Holdings:
        lo, hi = bounds[day], bounds[day + 1]
        key = plays.sites[lo:hi] * n_titles + plays.titles[lo:hi]
        own = np.bincount(key, minlength=n_sites * n_titles).reshape(n_sites, n_titles).astype(np.float64)
        others = own.sum(axis=0)[None, :] - own
        past = forecast_demand(
            plays.sites, plays.members, plays.titles, plays.days, day=day, n_sites=n_sites,
            n_titles=n_titles, params=tie,
        )  # fmt: skip
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


def headroom(
    plays: Plays,
    config: SimulationConfig | None = None,
    *,
    grid: Sequence[ForecastParams] = DEFAULT_GRID,
    tie: ForecastParams | None = None,
    decays: Sequence[float] = BOTH_SIDES_DECAYS,
) -> Headroom:
    """The references of this module for ``plays`` (about a full nightly replay per grid candidate).

    ``tie`` breaks ties in the other-sites reference (titles no other site
    played that day): the forecast the fill uses (default: the grid's first).
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
    return Headroom(best, best_ratio, ratio(others), first_day, decays[k], sides[k])
