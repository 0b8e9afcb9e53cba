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
``bincount`` per part.  A :class:`Forecaster` keeps the sums as running
totals, so a replay that plans day after day reads each play once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from openflix.errors import DataError

__all__ = ["ForecastParams", "Forecaster", "forecast_demand"]

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

    To forecast many days in order from one log, a :class:`Forecaster` reads
    each play once instead of all of them every day.
    """
    forecaster = Forecaster(sites, members, titles, days, n_sites=n_sites, n_titles=n_titles, params=params)
    return forecaster.at(day, member_demand=member_demand)


class Forecaster:
    """:func:`forecast_demand` for one log of plays, day after day, each play read once.

    The forecast's sums are kept as running totals: moving on from day ``d``
    to a later day ``d'`` decays them by ``decay ** (d' - d)`` and adds the
    plays of days ``d..d'-1`` — so a replay over ``D`` days costs the plays
    once plus ``D`` times the ``(n_sites, n_titles)`` result, not ``D`` times
    the log.  Asking for an earlier day than the last starts over.  Results
    equal :func:`forecast_demand`'s up to rounding (the same sums, added in
    another order).

    Parameters are those of :func:`forecast_demand`; the plays are sorted by
    day once (stable) when they are not in day order already.  Besides the
    log it keeps ``(n_sites, n_titles)`` and ``(n_sites, n_members)`` arrays.
    """

    def __init__(
        self,
        sites: npt.ArrayLike,
        members: npt.ArrayLike,
        titles: npt.ArrayLike,
        days: npt.ArrayLike,
        *,
        n_sites: int,
        n_titles: int,
        params: ForecastParams | None = None,
    ) -> None:
        self.params = params or ForecastParams()
        s, m, t, d = _validated(sites, members, titles, days, n_sites, n_titles)
        if d.size and (np.diff(d) < 0).any():
            order = np.argsort(d, kind="stable")
            s, m, t, d = s[order], m[order], t[order], d[order]
        self.sites, self.members, self.titles, self.days = s, m, t, d
        self.n_sites, self.n_titles = n_sites, n_titles
        self.n_members = int(m.max()) + 1 if m.size else 0
        self._watched: _Watched | None = None
        self._start()

    def _start(self) -> None:
        """Back to no play read."""
        s, t, m = self.n_sites, self.n_titles, self.n_members
        self._read = 0  # plays read: those of days before ``self._day``
        self._members_read = 0  # one more than the highest member index among them
        self._day: int | None = None
        self._counts = np.zeros((s, t))  # sum of decay ** (day - 1 - d) per site and title
        self._title_first = np.full(t, np.iinfo(np.int64).max)  # day of each title's first play
        self._active = np.zeros((s, m))  # sum of activity_decay ** (day - 1 - d) over active days
        self._seen = np.zeros((s, t))  # sum over members of active * watched
        self._rate = np.zeros((s, m))  # (1 - activity_decay) * sum of activity_decay ** age over plays

    def at(self, day: int, *, member_demand: sp.spmatrix | npt.ArrayLike | None = None) -> FloatArray:
        """Expected plays of each title at each site on ``day`` (see :func:`forecast_demand`)."""
        p = self.params
        if self._day is not None and day < self._day:
            self._start()
        self._advance(day)
        if self._read == 0:
            return np.zeros((self.n_sites, self.n_titles), dtype=np.float64)
        demand = self._popularity(day)
        n_members = self._members_read
        if member_demand is not None:
            n_members = max(n_members, int(np.shape(member_demand)[0]))
        if p.unwatched_weight > 0:
            total = self._active.sum(axis=1, keepdims=True)
            share = np.divide(self._seen, total, out=np.zeros_like(self._seen), where=total > 0)
            demand *= 1.0 - p.unwatched_weight * share
        if member_demand is not None and p.recs_weight > 0:
            demand += p.recs_weight * self._predicted(n_members, member_demand)
        return _settled(np.maximum(demand, 0.0))

    # ------------------------------------------------------------------ running totals
    def _advance(self, day: int) -> None:
        """Read the plays of the days before ``day`` not read yet; every total then refers to ``day``."""
        p = self.params
        end = int(np.searchsorted(self.days, day))
        lo, gap = self._read, 0 if self._day is None else day - self._day
        self._day = day
        if gap:
            self._counts *= p.decay**gap
        s, t, d = (a[lo:end] for a in (self.sites, self.titles, self.days))
        if s.size:
            age = (day - 1 - d).astype(np.float64)
            key = s * self.n_titles + t
            self._counts += np.bincount(key, weights=p.decay**age, minlength=self._counts.size).reshape(
                self._counts.shape
            )
            np.minimum.at(self._title_first, t, d)
            self._members_read = max(self._members_read, int(self.members[lo:end].max()) + 1)
        if p.unwatched_weight > 0 or p.recs_weight > 0:
            self._advance_members(lo, end, gap, day)
        self._read = end

    def _advance_members(self, lo: int, end: int, gap: int, day: int) -> None:
        """Members' activity, what they watched and their play rate, from ``lo:end`` on."""
        p = self.params
        a = p.activity_decay**gap
        if self._watched is None:
            self._watched = _Watched(self)
        watched = self._watched
        s, m, d = self.sites[lo:end], self.members[lo:end], self.days[lo:end]
        # active' = a * active + delta;  seen' = sum active' * watched'
        #   = a * seen + delta @ watched' + (a * active) @ (watched' - watched)
        self._seen *= a
        self._active *= a
        self._rate *= a
        if s.size == 0:
            return
        age = (day - 1 - d).astype(np.float64)
        self._rate += np.bincount(
            s * self.n_members + m, weights=(1.0 - p.activity_decay) * p.activity_decay**age,
            minlength=self._rate.size,
        ).reshape(self._rate.shape)  # fmt: skip
        new = watched.first[lo:end]  # plays of a title the member had not played before
        if new.any():
            rows, cols = watched.rows(np.unique(m[new]), lo, end)
            self._seen += watched.product(self._active, rows, cols)
        span = int(d[-1] - d[0]) + 1
        pair, offset = np.divmod(np.unique((s * self.n_members + m) * span + (d - d[0])), span)
        site, member = np.divmod(pair, self.n_members)
        delta = p.activity_decay ** (day - 1 - d[0] - offset).astype(np.float64)
        delta_matrix = np.zeros_like(self._active)
        np.add.at(delta_matrix, (site, member), delta)
        rows, cols = watched.rows(np.unique(member), 0, end)
        self._seen += watched.product(delta_matrix, rows, cols)
        self._active += delta_matrix

    def _popularity(self, day: int) -> FloatArray:
        """Site volume (decayed plays per day) times the blended title share: ``(n_sites, n_titles)``."""
        p = self.params
        counts = self._counts
        first = int(self.days[0])
        volume = counts.sum(axis=1) / _exposure(np.array([day - first]), p.decay)[0]
        popularity = counts.sum(axis=0)
        if p.new_title_prior > 0:
            since = day - np.minimum(self._title_first, day)  # 0 for a title never played
            popularity = popularity / (_exposure(since, p.decay) + p.new_title_prior)
        total = popularity.sum()
        if total <= 0:  # every earlier play decayed to nothing (a gap of years at a short decay)
            return np.zeros_like(counts)
        global_share = popularity / total
        share = np.broadcast_to(global_share, counts.shape).copy()
        if p.local_weight > 0:
            site_total = counts.sum(axis=1, keepdims=True)
            local = np.divide(counts, site_total, out=share.copy(), where=site_total > 0)
            share = (1.0 - p.local_weight) * share + p.local_weight * local
        return np.asarray(volume[:, None] * share, dtype=np.float64)

    def _predicted(self, n_members: int, member_demand: sp.spmatrix | npt.ArrayLike) -> FloatArray:
        """``(n_sites, n_titles)``: members' expected plays per day times their predicted next plays."""
        md = member_demand if sp.issparse(member_demand) else np.asarray(member_demand, dtype=np.float64)
        if md.shape[1] != self.n_titles:
            raise DataError(
                f"member_demand must have {self.n_titles} columns, one per title (got {md.shape[1]})"
            )
        if md.shape[0] < n_members:
            raise DataError(
                f"member_demand must have a row for each of {n_members} members (got {md.shape[0]})"
            )
        rate = self._rate[:, : min(self.n_members, md.shape[0])]
        if rate.shape[1] < md.shape[0]:
            rate = np.pad(rate, ((0, 0), (0, md.shape[0] - rate.shape[1])))
        out = sp.csr_matrix(rate) @ md
        return np.asarray(out.todense() if sp.issparse(out) else out, dtype=np.float64)


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


def _settled(x: FloatArray) -> FloatArray:
    """``x`` rounded to 40 significant bits (about 12 digits): sums that are equal but were added in
    another order come out equal, so the fill breaks their ties by title, not by rounding noise."""
    mantissa, exponent = np.frexp(x)
    return np.ldexp(np.round(mantissa * 2.0**40) / 2.0**40, exponent)


def _exposure(days_available: IntArray, decay: float) -> FloatArray:
    """Decayed count of days ``sum(decay**j for j < n)`` for each ``n`` of ``days_available``."""
    n = days_available.astype(np.float64)
    if decay == 1.0:
        return n
    return np.asarray((1.0 - decay**n) / (1.0 - decay), dtype=np.float64)


class _Watched:
    """The first play of each (member, title) pair in a :class:`Forecaster`'s log, by member: to read
    what given members watched within a range of the log."""

    def __init__(self, f: Forecaster) -> None:
        key = f.members * f.n_titles + f.titles
        first = np.sort(np.unique(key, return_index=True)[1])  # positions in the log, in log order
        self.first = np.zeros(key.size, dtype=bool)
        self.first[first] = True
        by_member = first[np.argsort(f.members[first], kind="stable")]
        self.member, self.title = f.members[by_member], f.titles[by_member]
        self.stride = key.size + 1
        self.order = self.member * self.stride + by_member  # sorted: member, then position in the log
        self.n_titles = f.n_titles

    def rows(self, members: IntArray, lo: int, end: int) -> tuple[IntArray, IntArray]:
        """``(member, title)`` of every first play of ``members`` at log positions ``lo..end-1``."""
        start = np.searchsorted(self.order, members * self.stride + lo)
        stop = np.searchsorted(self.order, members * self.stride + end)
        lengths = stop - start
        index = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        return self.member[index], self.title[index]

    def product(self, weights: FloatArray, members: IntArray, titles: IntArray) -> FloatArray:
        """``(n_sites, n_titles)``: ``weights`` ``(n_sites, n_members)`` times the 0/1 matrix of the
        pairs ``(members, titles)``."""
        n_sites = weights.shape[0]
        if n_sites * members.size <= _DENSE_PAIRS:  # a day's new pairs: one bincount
            key = (np.arange(n_sites)[:, None] * self.n_titles + titles[None, :]).ravel()
            dense = np.bincount(key, weights=weights[:, members].ravel(), minlength=n_sites * self.n_titles)
            return np.asarray(dense.reshape(n_sites, self.n_titles), dtype=np.float64)
        used, row = np.unique(members, return_inverse=True)
        pairs = sp.csr_matrix((np.ones(members.size), (row, titles)), shape=(used.size, self.n_titles))
        out = sp.csr_matrix(weights[:, used]) @ pairs  # sparse both: a member weighs at its own sites only
        return np.asarray(out.todense(), dtype=np.float64)


_DENSE_PAIRS = 1 << 20
"""Up to this many (site, pair) weights, :meth:`_Watched.product` is one dense ``bincount`` (fast on a
day's few pairs); beyond, a sparse product (a whole log over many sites would not fit in memory)."""
