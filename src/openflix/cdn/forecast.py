"""Demand forecast for the nightly fill: expected plays of each title at each site tomorrow.

The forecast for day ``d`` reads only plays of days before ``d`` (plays of day
``d`` or later are ignored, so it can be handed the whole log).  It has up to
three parts, all in plays per day:

* **popularity** — each site's expected volume (its plays per day, decayed
  mean) spread over titles by the catalog-wide share of plays, decayed by
  ``decay`` per day of age, optionally blended with the site's own share
  (``local_weight``; local counts are sparse, so they are shrunk toward the
  global share).  With ``new_title_prior`` > 0 a title's count is divided by
  its own decayed exposure (days since its first play, plus that prior in
  days) instead of the catalog's, so a title that appeared a week ago is
  compared on its plays per day since then, not diluted by the weeks before
  it existed;
* **not yet watched** — a member plays a title once, so a title's demand at a
  site is scaled by ``1 - unwatched_weight * w``, ``w`` being the share of the
  site's recently active members (weighted by active days decayed by
  ``activity_decay``) who have already played it;
* **predicted member demand** — optionally, ``recs_weight`` times the sum over
  the site's members of their expected plays per day times the recommender's
  predicted distribution of their next plays over titles.

Everything is vectorized over plays, sites, members and titles: one
``bincount`` or sparse product per part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from openflix.errors import DataError

__all__ = ["ForecastParams", "forecast_demand"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ForecastParams:
    """Knobs of :func:`forecast_demand`.

    Attributes
    ----------
    decay:
        Weight kept per day of age by a play in the popularity counts, in
        ``(0, 1]`` (0.95: a play of a fortnight ago counts about half).
    local_weight:
        Share of the site's own decayed popularity in the blend, in ``[0, 1]``.
    unwatched_weight:
        Strength of the not-yet-watched scaling, in ``[0, 1]`` (0: off).
    activity_decay:
        Weight kept per day of age by a member's activity, in ``(0, 1)``;
        sets who counts as recently active and their expected plays per day.
    recs_weight:
        Weight of the recommender's predicted member demand (0: off).
    new_title_prior:
        Days of prior exposure added to every title when its plays are
        divided by its exposure since first play (0: off, plain decayed share).
    """

    decay: float = 0.95
    local_weight: float = 0.0
    unwatched_weight: float = 0.0
    activity_decay: float = 0.8
    recs_weight: float = 0.0
    new_title_prior: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "decay": 0.0 < self.decay <= 1.0,
            "local_weight": 0.0 <= self.local_weight <= 1.0,
            "unwatched_weight": 0.0 <= self.unwatched_weight <= 1.0,
            "activity_decay": 0.0 < self.activity_decay < 1.0,
            "recs_weight": self.recs_weight >= 0.0,
            "new_title_prior": self.new_title_prior >= 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise DataError(f"forecast parameter {name!r} is out of range (got {getattr(self, name)!r})")

    def describe(self) -> str:
        """A short human-readable summary, e.g. for benchmark tables."""
        parts = [f"decay {self.decay:g}/day"]
        if self.new_title_prior:
            parts.append(f"new-title prior {self.new_title_prior:g} d")
        if self.local_weight:
            parts.append(f"local {self.local_weight:g}")
        if self.unwatched_weight:
            parts.append(f"unwatched {self.unwatched_weight:g} (activity decay {self.activity_decay:g})")
        if self.recs_weight:
            parts.append(f"recs {self.recs_weight:g}")
        return ", ".join(parts)


def forecast_demand(
    sites: npt.ArrayLike,
    members: npt.ArrayLike,
    titles: npt.ArrayLike,
    days: npt.ArrayLike,
    *,
    day: int,
    n_sites: int,
    n_titles: int,
    params: ForecastParams | None = None,
    member_demand: sp.spmatrix | npt.ArrayLike | None = None,
) -> FloatArray:
    """Expected plays of each title at each site on ``day``: ``(n_sites, n_titles)`` float64.

    Parameters
    ----------
    sites, members, titles, days:
        Parallel ``(n_plays,)`` integer arrays, one entry per observed play:
        the member's site index (``0..n_sites-1``), member index (``>= 0``),
        title index (``0..n_titles-1``) and day number (any integer day
        scale, e.g. days since the first day of data).  Plays with
        ``days >= day`` are ignored.
    day:
        The day being planned, on the same scale as ``days``.
    n_sites, n_titles:
        Shape of the result.
    params:
        The forecast's knobs (defaults: :class:`ForecastParams`).
    member_demand:
        ``(n_members, n_titles)`` predicted distribution of each member's
        next plays over titles (rows sum to 1, or 0 for members without a
        prediction); used when ``params.recs_weight > 0``.

    Returns
    -------
    numpy.ndarray
        ``(n_sites, n_titles)`` non-negative float64, plays per day.
    """
    p = params or ForecastParams()
    s, m, t, d = _validated(sites, members, titles, days, n_sites, n_titles)
    before = d < day
    s, m, t, d = s[before], m[before], t[before], d[before]
    if s.size == 0:
        return np.zeros((n_sites, n_titles), dtype=np.float64)
    age = (day - 1 - d).astype(np.float64)
    demand = _popularity(s, t, age, d, day, n_sites, n_titles, p)
    n_members = int(m.max()) + 1
    if member_demand is not None:
        n_members = max(n_members, int(np.shape(member_demand)[0]))
    if p.unwatched_weight > 0:
        demand *= 1.0 - p.unwatched_weight * _watched_share(s, m, t, d, day, n_sites, n_members, n_titles, p)
    if member_demand is not None and p.recs_weight > 0:
        demand += p.recs_weight * _predicted(s, m, age, n_sites, n_members, n_titles, member_demand, p)
    return np.maximum(demand, 0.0)


def _validated(
    sites: npt.ArrayLike,
    members: npt.ArrayLike,
    titles: npt.ArrayLike,
    days: npt.ArrayLike,
    n_sites: int,
    n_titles: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    arrays = [np.asarray(a) for a in (sites, members, titles, days)]
    names = ("sites", "members", "titles", "days")
    for name, a in zip(names, arrays, strict=True):
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise DataError(f"{name} must be a 1-d integer array (got shape {a.shape}, dtype {a.dtype})")
    if len({a.size for a in arrays}) != 1:
        sizes = ", ".join(f"{n} {a.size}" for n, a in zip(names, arrays, strict=True))
        raise DataError(f"sites, members, titles and days must have one entry per play (got {sizes})")
    s, m, t, d = (a.astype(np.int64, copy=False) for a in arrays)
    if n_sites <= 0 or n_titles <= 0:
        raise DataError(f"n_sites and n_titles must be > 0 (got {n_sites}, {n_titles})")
    if s.size:
        if s.min() < 0 or s.max() >= n_sites:
            raise DataError(f"site indices must be in 0..{n_sites - 1} (got {s.min()}..{s.max()})")
        if t.min() < 0 or t.max() >= n_titles:
            raise DataError(f"title indices must be in 0..{n_titles - 1} (got {t.min()}..{t.max()})")
        if m.min() < 0:
            raise DataError(f"member indices must be >= 0 (got {m.min()})")
    return s, m, t, d


def _popularity(
    s: IntArray,
    t: IntArray,
    age: FloatArray,
    d: IntArray,
    day: int,
    n_sites: int,
    n_titles: int,
    p: ForecastParams,
) -> FloatArray:
    """Site volume (decayed plays per day) times the blended title share: ``(n_sites, n_titles)``."""
    w = p.decay**age
    counts = np.bincount(s * n_titles + t, weights=w, minlength=n_sites * n_titles).reshape(n_sites, n_titles)
    first = int(d.min())
    volume = counts.sum(axis=1) / _exposure(np.array([day - first]), p.decay)[0]
    popularity = counts.sum(axis=0)
    if p.new_title_prior > 0:
        title_first = np.full(n_titles, day, dtype=np.int64)
        np.minimum.at(title_first, t, d)
        popularity = popularity / (_exposure(day - title_first, p.decay) + p.new_title_prior)
    global_share = popularity / popularity.sum()
    share = np.broadcast_to(global_share, counts.shape).copy()
    if p.local_weight > 0:
        site_total = counts.sum(axis=1, keepdims=True)
        local = np.divide(counts, site_total, out=share.copy(), where=site_total > 0)
        share = (1.0 - p.local_weight) * share + p.local_weight * local
    return np.asarray(volume[:, None] * share, dtype=np.float64)


def _exposure(days_available: IntArray, decay: float) -> FloatArray:
    """Decayed count of days ``sum(decay**j for j < n)`` for each ``n`` of ``days_available``."""
    n = days_available.astype(np.float64)
    if decay == 1.0:
        return n
    return np.asarray((1.0 - decay**n) / (1.0 - decay), dtype=np.float64)


def _activity(
    s: IntArray, m: IntArray, d: IntArray, day: int, n_sites: int, n_members: int, p: ForecastParams
) -> sp.csr_matrix:
    """``(n_sites, n_members)`` active days of each member at each site, each decayed by its age."""
    first = int(d.min())
    span = int(d.max()) - first + 1
    pair, offset = np.divmod(np.unique((s * n_members + m) * span + (d - first)), span)
    site, member = np.divmod(pair, n_members)
    age = (day - 1 - first - offset).astype(np.float64)
    return sp.csr_matrix((p.activity_decay**age, (site, member)), shape=(n_sites, n_members))


def _watched_share(
    s: IntArray,
    m: IntArray,
    t: IntArray,
    d: IntArray,
    day: int,
    n_sites: int,
    n_members: int,
    n_titles: int,
    p: ForecastParams,
) -> FloatArray:
    """``(n_sites, n_titles)`` activity-weighted share of each site's members who played each title."""
    active = _activity(s, m, d, day, n_sites, n_members, p)
    watched = sp.csr_matrix((np.ones(m.size), (m, t)), shape=(n_members, n_titles))
    watched.data[:] = 1.0  # duplicates summed by the constructor: a title is watched or not
    total = np.asarray(active.sum(axis=1)).ravel()
    share = np.asarray((active @ watched).todense(), dtype=np.float64)
    return np.divide(share, total[:, None], out=np.zeros_like(share), where=total[:, None] > 0)


def _predicted(
    s: IntArray,
    m: IntArray,
    age: FloatArray,
    n_sites: int,
    n_members: int,
    n_titles: int,
    member_demand: sp.spmatrix | npt.ArrayLike,
    p: ForecastParams,
) -> FloatArray:
    """``(n_sites, n_titles)``: members' expected plays per day times their predicted next plays."""
    rate = sp.csr_matrix(
        ((1.0 - p.activity_decay) * p.activity_decay**age, (s, m)), shape=(n_sites, n_members)
    )
    md = member_demand if sp.issparse(member_demand) else np.asarray(member_demand, dtype=np.float64)
    if md.shape[1] != n_titles:
        raise DataError(f"member_demand must have {n_titles} columns, one per title (got {md.shape[1]})")
    if md.shape[0] < n_members:
        raise DataError(f"member_demand must have a row for each of {n_members} members (got {md.shape[0]})")
    out = rate @ md
    return np.asarray(out.todense() if sp.issparse(out) else out, dtype=np.float64)
