"""Offload simulation: replay plays day by day against fill policies and count where each is served.

Members are assigned to ``n_sites`` embedded sites (member id mod
``n_sites``); each site stores ``storage_share`` of the catalog over
``appliances_per_site`` appliances of equal capacity; every title has the same
size.  A play is served **embedded** when its member's site holds the title,
else at the **exchange** — one exchange site serving every embedded site,
storing ``exchange_share`` of the catalog, filled each night by catalog-wide
popularity decayed by ``exchange_decay`` per day, the same for every policy —
else from the **origin**.  A day starts at ``day_start`` seconds after UTC midnight (default 0: a
UTC calendar day): the moment every site's nightly fill takes effect.

Policies (what a site holds on day ``d``):

``lru``
    A least-recently-used cache per site, reactive: it updates as plays arrive.
``popularity-<decay>``
    The catalog-wide top titles by plays decayed by ``<decay>`` per day.
``openflix``
    :func:`openflix.cdn.forecast.forecast_demand` without the recommender,
    through the real fill's choice of titles and copies
    (:func:`~openflix.cdn.fill.copies_for`; see :func:`fill_holdings`): a hit
    is the site holding the title on any of its appliances.
``openflix+recs``
    The same with the recommender's predicted demand of the site's members
    (a model fit on plays before the day, refit every ``refit_days``, members'
    histories folded in daily).
``clairvoyant``
    The fill planned from day ``d``'s actual plays: a reference no policy can
    reach.

Every nightly policy except ``clairvoyant`` plans day ``d`` from plays of
earlier days only.  The ratio reported is counted after a warm-up of the
first ``warmup_share`` of days (from the first to the last day of data); the
forecast's knobs are chosen on the warm-up alone (:func:`choose_forecast`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from openflix.cdn.fill import copies_for
from openflix.cdn.forecast import Forecaster, ForecastParams
from openflix.errors import DataError, OpenflixError
from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models.base import Recommender

__all__ = [
    "DEFAULT_GRID",
    "ForecastChoice",
    "MissingDependencyError",
    "Plays",
    "PolicyResult",
    "SimulationConfig",
    "SimulationResult",
    "choose_forecast",
    "fill_holdings",
    "forecast_plan",
    "plot",
    "policy_names",
    "replay_nightly",
    "simulate",
]

DAY = 86_400
"""Seconds in a (UTC calendar) day."""

IntArray = npt.NDArray[np.int64]
Holdings = npt.NDArray[np.bool_]
"""``(n_sites, n_titles)``: whether each site holds each title."""
RecommenderFactory = Callable[[], Recommender]


class MissingDependencyError(OpenflixError, ImportError):
    """An optional dependency (e.g. matplotlib) is not installed."""


# --------------------------------------------------------------------------- input
@dataclass(frozen=True, eq=False)
class Plays:
    """Plays in time order (ties keep input order): parallel ``(n_plays,)`` int64 arrays.

    Attributes
    ----------
    members, titles:
        Member and title indices (``0..n_members-1``, ``0..n_titles-1``).
    sites:
        Embedded site of the member of each play (``0..n_sites-1``).
    days:
        Day of each play, ``0`` = the first day of the data (days start ``day_start`` seconds
        after UTC midnight).
    times:
        Unix seconds.
    """

    members: IntArray
    titles: IntArray
    sites: IntArray
    days: IntArray
    times: IntArray
    n_members: int
    n_titles: int
    n_sites: int
    first_day: int
    """The first day of data, in days since 1970-01-01 (UTC)."""
    day_start: int = 0
    """Seconds after UTC midnight at which each day starts (when the fills take effect)."""

    @classmethod
    def from_arrays(
        cls,
        members: npt.ArrayLike,
        titles: npt.ArrayLike,
        timestamps: npt.ArrayLike,
        *,
        n_titles: int | None = None,
        n_sites: int = 8,
        day_start: int = 0,
    ) -> Plays:
        """Plays from member ids (integers >= 0; site = id mod ``n_sites``), title indices, Unix seconds;
        each day starts ``day_start`` seconds after UTC midnight (0..86,399)."""
        mem = _int_array(members, "members")
        tit = _int_array(titles, "titles")
        ts = _int_array(timestamps, "timestamps")
        if not mem.size == tit.size == ts.size:
            raise DataError(
                f"members, titles and timestamps must have one entry per play "
                f"(got {mem.size}, {tit.size}, {ts.size})"
            )
        if mem.size == 0:
            raise DataError("no plays to replay")
        if n_sites <= 0:
            raise DataError(f"n_sites must be > 0 (got {n_sites})")
        if not 0 <= day_start < DAY:
            raise DataError(f"day_start must be seconds after midnight, 0..{DAY - 1} (got {day_start})")
        if mem.min() < 0 or tit.min() < 0:
            raise DataError("member ids and title indices must be >= 0")
        n_t = int(tit.max()) + 1 if n_titles is None else n_titles
        if tit.max() >= n_t:
            raise DataError(f"title indices must be < n_titles={n_t} (got {tit.max()})")
        order = np.argsort(ts, kind="stable")
        mem, tit, ts = mem[order], tit[order], ts[order]
        ids, index = np.unique(mem, return_inverse=True)
        day = (ts - day_start) // DAY
        return cls(
            members=index.astype(np.int64),
            titles=tit,
            sites=mem % n_sites,
            days=day - day[0],
            times=ts,
            n_members=len(ids),
            n_titles=n_t,
            n_sites=n_sites,
            first_day=int(day[0]),
            day_start=day_start,
        )

    @classmethod
    def from_interactions(cls, data: Interactions, *, n_sites: int = 8, day_start: int = 0) -> Plays:
        """Every event of ``data`` as a play; integer member ids pick the site (id mod ``n_sites``)."""
        if not data.has_timestamps:
            raise DataError("the data has no timestamps: plays cannot be replayed in time order")
        ids = data.user_ids
        member_ids = ids[data.users] if ids.dtype.kind in "iu" else data.users
        return cls.from_arrays(
            member_ids,
            data.items,
            data.timestamps,
            n_titles=data.n_items,
            n_sites=n_sites,
            day_start=day_start,
        )

    @property
    def n_plays(self) -> int:
        return int(self.members.size)

    @property
    def n_days(self) -> int:
        """Days from the first to the last day of data, both included."""
        return int(self.days[-1]) + 1

    def day_bounds(self) -> IntArray:
        """``(n_days + 1,)``: plays of day ``d`` are ``bounds[d]:bounds[d + 1]``."""
        return np.searchsorted(self.days, np.arange(self.n_days + 1)).astype(np.int64)

    def before(self, day: int) -> Plays:
        """Only the plays of days before ``day`` (for choices that must not see later days)."""
        k = int(np.searchsorted(self.days, day))
        if k == 0:
            raise DataError(f"no plays before day {day}")
        return replace(
            self,
            members=self.members[:k],
            titles=self.titles[:k],
            sites=self.sites[:k],
            days=self.days[:k],
            times=self.times[:k],
        )

    def forecaster(self, params: ForecastParams) -> Forecaster:
        """The demand forecast ``params`` over these plays, for the days of a replay in order."""
        return Forecaster(
            self.sites, self.members, self.titles, self.days, n_sites=self.n_sites, n_titles=self.n_titles,
            params=params,
        )  # fmt: skip

    def interactions(self) -> Interactions:
        """The plays as recommender training data (member and title indices kept)."""
        return Interactions(
            users=self.members.astype(np.int32),
            items=self.titles.astype(np.int32),
            ratings=np.ones(self.n_plays, dtype=np.float32),
            timestamps=self.times,
            user_ids=np.arange(self.n_members),
            item_ids=np.arange(self.n_titles),
            has_ratings=False,
        )


def _int_array(values: npt.ArrayLike, name: str) -> IntArray:
    a = np.asarray(values)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise DataError(f"{name} must be a 1-d integer array (got shape {a.shape}, dtype {a.dtype})")
    return a.astype(np.int64)


# --------------------------------------------------------------------------- config and results
@dataclass(frozen=True)
class SimulationConfig:
    """The replay protocol.  Shares are of the catalog; decays are weights kept per day of age."""

    storage_share: float = 0.30
    appliances_per_site: int = 4
    exchange_share: float = 0.60
    exchange_decay: float = 0.95
    warmup_share: float = 0.20
    popularity_decays: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98)
    refit_days: int = 7
    recs_top_n: int = 100
    recs_window_days: int = 30

    def __post_init__(self) -> None:
        for name in ("storage_share", "exchange_share", "warmup_share"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise DataError(f"{name} must be in (0, 1) (got {getattr(self, name)!r})")
        if self.appliances_per_site < 1 or self.refit_days < 1 or self.recs_top_n < 1:
            raise DataError("appliances_per_site, refit_days and recs_top_n must be >= 1")

    def site_capacity(self, n_titles: int) -> int:
        """Titles one embedded site stores: ``storage_share`` of ``n_titles``, rounded down to whole
        titles on each of its appliances."""
        per_appliance = int(self.storage_share * n_titles) // self.appliances_per_site
        return per_appliance * self.appliances_per_site

    def warmup_days(self, n_days: int) -> int:
        """Days of warm-up, not counted (rounded down)."""
        return int(self.warmup_share * n_days)


@dataclass(frozen=True, eq=False)
class PolicyResult:
    """Per-day plays served at each tier by one policy: ``(n_days,)`` int64 arrays."""

    name: str
    description: str
    embedded: IntArray
    exchange: IntArray
    origin: IntArray
    warmup_days: int
    seconds: float
    churn: float | None = None
    """Mean share of a site's storage newly filled per counted day (``None`` for the reactive LRU)."""
    hit: npt.NDArray[np.bool_] | None = None
    """``(n_plays,)``: whether each play (in :class:`Plays` order) was served embedded."""

    def _counted(self, tier: IntArray) -> float:
        total = int((self.embedded + self.exchange + self.origin)[self.warmup_days :].sum())
        return float(tier[self.warmup_days :].sum() / total) if total else 0.0

    @property
    def embedded_ratio(self) -> float:
        """Share of plays served embedded, after the warm-up."""
        return self._counted(self.embedded)

    @property
    def exchange_ratio(self) -> float:
        return self._counted(self.exchange)

    @property
    def origin_ratio(self) -> float:
        return self._counted(self.origin)

    def daily_embedded_share(self) -> npt.NDArray[np.float64]:
        """``(n_days,)`` share of each day's plays served embedded (NaN on days without plays)."""
        total = (self.embedded + self.exchange + self.origin).astype(np.float64)
        share = np.divide(self.embedded, total, out=np.full(total.shape, np.nan), where=total > 0)
        return np.asarray(share, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Every policy's result on one replay, with the protocol and the forecast knobs chosen."""

    policies: tuple[PolicyResult, ...]
    config: SimulationConfig
    n_plays: int
    n_days: int
    warmup_days: int
    site_capacity: int
    n_sites: int
    first_day: int
    choice: ForecastChoice
    """The knobs of ``openflix`` and ``openflix+recs``, and how they were chosen."""

    def policy(self, name: str) -> PolicyResult:
        for p in self.policies:
            if p.name == name:
                return p
        raise DataError(f"no policy {name!r} in this result; have {', '.join(p.name for p in self.policies)}")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per policy (name, description, ratios after warm-up, seconds): for tables."""
        return [
            {
                "policy": p.name,
                "description": p.description,
                "embedded": p.embedded_ratio,
                "exchange": p.exchange_ratio,
                "origin": p.origin_ratio,
                "churn": p.churn,
                "seconds": p.seconds,
            }
            for p in self.policies
        ]

    def format_table(self) -> str:
        """A plain-text table of :meth:`rows`."""
        lines = [
            f"{'policy':<18} {'embedded':>9} {'exchange':>9} {'origin':>7} {'churn/day':>9} {'seconds':>8}  "
            "description"
        ]
        for r in self.rows():
            churn = "-" if r["churn"] is None else f"{r['churn']:.4f}"
            lines.append(
                f"{r['policy']:<18} {r['embedded']:>9.4f} {r['exchange']:>9.4f} {r['origin']:>7.4f} "
                f"{churn:>9} {r['seconds']:>8.1f}  {r['description']}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- fill and counting
def fill_holdings(demand: npt.NDArray[np.float64], capacity: int, n_appliances: int) -> Holdings:
    """What every site holds after its fill: ``(n_sites, n_titles)`` demand -> holdings.

    Each site has ``n_appliances`` appliances of ``capacity // n_appliances``
    whole titles; the titles and their copies come from :func:`copies_for`,
    as in a real fill.  A site holds exactly the titles given copies:
    :func:`place`, which only decides *which* appliances, stores every one of
    them when their copies fit in the appliances' room, as they do here — a
    title finds an appliance with room while fewer copies than the room are
    placed (a test checks this against :func:`place`).  So the replay leaves
    placement out, which would cost it most of its time.
    """
    room = n_appliances * (int(capacity) // n_appliances)
    held = np.zeros(demand.shape, dtype=bool)
    for s in range(demand.shape[0]):
        held[s] = copies_for(demand[s], n_appliances, room) > 0
    return held


def _exchange_holdings(plays: Plays, config: SimulationConfig) -> Holdings:
    """``(n_days, n_titles)``: what the exchange site holds each day (popularity from earlier days)."""
    capacity = int(config.exchange_share * plays.n_titles)
    params = ForecastParams(decay=config.exchange_decay)
    out = np.zeros((plays.n_days, plays.n_titles), dtype=bool)
    zeros = np.zeros(plays.n_plays, dtype=np.int64)
    forecaster = Forecaster(
        zeros, plays.members, plays.titles, plays.days, n_sites=1, n_titles=plays.n_titles, params=params
    )
    bounds = plays.day_bounds()
    for day in np.flatnonzero(np.diff(bounds)).tolist():  # days with plays: nothing to serve on others
        out[day] = fill_holdings(forecaster.at(day), capacity, config.appliances_per_site)[0]
    return out


def _tiers(
    plays: Plays, embedded: npt.NDArray[np.bool_], exchange: Holdings
) -> tuple[IntArray, IntArray, IntArray]:
    """Per-day counts embedded / exchange / origin from a per-play embedded flag ``(n_plays,)``."""
    at_exchange = ~embedded & exchange[plays.days, plays.titles]
    n = plays.n_days
    emb = np.bincount(plays.days, weights=embedded, minlength=n).astype(np.int64)
    exc = np.bincount(plays.days, weights=at_exchange, minlength=n).astype(np.int64)
    total = np.bincount(plays.days, minlength=n).astype(np.int64)
    return emb, exc, total - emb - exc


def replay_nightly(plays: Plays, plan: Callable[[int], Holdings]) -> tuple[npt.NDArray[np.bool_], IntArray]:
    """Per-play embedded flag ``(n_plays,)`` when each day's holdings are ``plan(day)``, and
    ``(n_days,)`` titles newly stored that day, summed over sites (day 0: none counted).

    A day without plays is not planned: it serves nothing, and no plan reads an earlier one, so no
    share changes; the titles a fill adds over such nights count on the next day with plays (the
    bundled latest-small spans 7,952 days, 3,840 of them with plays).
    """
    bounds = plays.day_bounds()
    hit = np.zeros(plays.n_plays, dtype=bool)
    added = np.zeros(plays.n_days, dtype=np.int64)
    before: Holdings | None = None
    for day in range(plays.n_days):
        lo, hi = bounds[day], bounds[day + 1]
        if lo == hi:
            continue
        held = plan(day)
        hit[lo:hi] = held[plays.sites[lo:hi], plays.titles[lo:hi]]
        if before is not None:
            added[day] = int((held & ~before).sum())
        before = held
    return hit, added


def _replay_lru(plays: Plays, capacity: int) -> npt.NDArray[np.bool_]:
    """Per-play embedded flag of a reactive LRU cache per site (a sequential process, so a loop)."""
    caches: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(plays.n_sites)]
    hit = np.zeros(plays.n_plays, dtype=bool)
    for k, (s, t) in enumerate(zip(plays.sites.tolist(), plays.titles.tolist(), strict=True)):
        cache = caches[s]
        if t in cache:
            hit[k] = True
            cache.move_to_end(t)
        else:
            cache[t] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hit


# --------------------------------------------------------------------------- policies
def forecast_plan(
    plays: Plays,
    params: ForecastParams,
    capacity: int,
    config: SimulationConfig,
    member_demand: Callable[[int], sp.csr_matrix] | None = None,
) -> Callable[[int], Holdings]:
    """``plan(day)``: every site's holdings on ``day`` from the forecast ``params`` (plays before ``day``;
    asked day after day, as a replay does, each play is read once)."""
    forecaster = plays.forecaster(params)

    def plan(day: int) -> Holdings:
        md = member_demand(day) if member_demand is not None and params.recs_weight > 0 else None
        return fill_holdings(forecaster.at(day, member_demand=md), capacity, config.appliances_per_site)

    return plan


def _clairvoyant_plan(plays: Plays, capacity: int, config: SimulationConfig) -> Callable[[int], Holdings]:
    bounds = plays.day_bounds()

    def plan(day: int) -> Holdings:
        lo, hi = bounds[day], bounds[day + 1]
        key = plays.sites[lo:hi] * plays.n_titles + plays.titles[lo:hi]
        demand = np.bincount(key, minlength=plays.n_sites * plays.n_titles).astype(np.float64)
        demand = demand.reshape(plays.n_sites, plays.n_titles)
        return fill_holdings(demand, capacity, config.appliances_per_site)

    return plan


class _MemberDemand:
    """Predicted next plays of recently active members, from a model fit on plays before the day.

    The model is refit every ``refit_days`` days; in between, members'
    histories up to the day are folded in.  Each active member's row spreads
    one play evenly over their top ``top_n`` unwatched titles.
    """

    def __init__(self, plays: Plays, factory: RecommenderFactory, config: SimulationConfig) -> None:
        self.plays = plays
        self.factory = factory
        self.config = config
        self.data = plays.interactions()
        self.model: Recommender | None = None
        self.fitted_day = -(10**9)
        self.cache: dict[int, sp.csr_matrix] = {}

    def __call__(self, day: int) -> sp.csr_matrix:
        if day not in self.cache:
            self.cache[day] = self._compute(day)
        return self.cache[day]

    def _compute(self, day: int) -> sp.csr_matrix:
        p, n = self.plays, self.config.recs_top_n
        k = int(np.searchsorted(p.days, day))
        shape = (p.n_members, p.n_titles)
        if k == 0:
            return sp.csr_matrix(shape)
        if self.model is None or day - self.fitted_day >= self.config.refit_days:
            self.model = self.factory().fit(self.data.subset(np.arange(k)))
            self.fitted_day = day
        recent = p.days[:k] >= day - self.config.recs_window_days
        members = np.unique(p.members[:k][recent])
        history = History.from_interactions(self.data.subset(np.arange(k))).rows(members)
        items, _ = self.model.recommend_batch(history, None, n=n)
        rows = np.repeat(members, n)
        cols = items.ravel()
        keep = cols >= 0
        return sp.csr_matrix((np.full(int(keep.sum()), 1.0 / n), (rows[keep], cols[keep])), shape=shape)


def default_recommender() -> Recommender:
    """The project's default recommender (sequential EASE) with its default knobs."""
    from openflix.recs.models.sequential import SequentialEASE

    return SequentialEASE()


DEFAULT_GRID: tuple[ForecastParams, ...] = tuple(
    ForecastParams(decay=d, new_title_prior=nt, local_weight=lw, unwatched_weight=uw, activity_decay=0.5)
    for d in (0.95, 0.98, 0.99)
    for nt in (0.0, 5.0, 10.0)
    for lw in (0.0, 0.1)
    for uw in (0.0, 0.3)
)
"""Forecast candidates tried on the warm-up (without the recommender)."""

RECS_WEIGHTS: tuple[float, ...] = (0.25, 1.0, 4.0)
"""Recommender weights tried on the warm-up on top of the chosen forecast."""


@dataclass(frozen=True)
class ForecastChoice:
    """The forecast knobs chosen on the warm-up, and the evidence.

    Attributes
    ----------
    forecast:
        The best candidate without the recommender.
    recs_forecast:
        The best recommender weight on top of ``forecast`` (None without a recommender).
    recs_helps:
        Whether the recommender measurably helps on the warm-up: its daily
        gains in plays served embedded sum to more than two standard errors
        (paired over warm-up days).  Only then does it belong in the default.
    tried:
        Each candidate's description and warm-up embedded ratio, in the order tried.
    """

    forecast: ForecastParams
    recs_forecast: ForecastParams | None
    recs_helps: bool
    tried: tuple[tuple[str, float], ...]

    @property
    def default(self) -> ForecastParams:
        """What the nightly fill should use: with the recommender only where it measurably helps."""
        return self.recs_forecast if self.recs_helps and self.recs_forecast is not None else self.forecast


def _measurably_better(better: npt.NDArray[np.bool_], base: npt.NDArray[np.bool_], days: IntArray) -> bool:
    """Paired test over days: the gain in hits exceeds two standard errors of the daily gains' sum."""
    gain = np.bincount(days, weights=better.astype(np.float64) - base.astype(np.float64))
    return bool(gain.sum() > 2.0 * np.sqrt(len(gain)) * gain.std(ddof=1)) if len(gain) > 1 else False


def choose_forecast(
    plays: Plays,
    config: SimulationConfig | None = None,
    *,
    grid: Sequence[ForecastParams] = DEFAULT_GRID,
    recommender: RecommenderFactory | None = None,
    progress: Callable[[str], None] | None = None,
) -> ForecastChoice:
    """Choose the forecast's knobs on the warm-up days alone.

    Only plays of the first ``warmup_share`` of days are looked at: each
    candidate of ``grid`` is replayed over them and the best embedded ratio
    on warm-up days 1.. wins (ties: the earlier candidate).  Then, with a
    ``recommender``, the weights :data:`RECS_WEIGHTS` are tried on top.
    ``progress`` is told each candidate as its replay starts.
    """
    cfg = config or SimulationConfig()
    warm = plays.before(cfg.warmup_days(plays.n_days))
    capacity = cfg.site_capacity(plays.n_titles)
    counted = warm.days >= 1
    tried: list[tuple[str, float]] = []

    def replay(params: ForecastParams, md: _MemberDemand | None = None) -> npt.NDArray[np.bool_]:
        if progress is not None:
            progress(f"choosing the forecast on the warm-up: candidate {len(tried) + 1}, {params.describe()}")
        hit = replay_nightly(warm, forecast_plan(warm, params, capacity, cfg, md))[0][counted]
        tried.append((params.describe(), float(hit.mean())))
        return hit

    hits = [replay(p) for p in grid]
    k = int(np.argmax([h.mean() for h in hits]))
    best, best_hits = grid[k], hits[k]
    if recommender is None:
        return ForecastChoice(best, None, False, tuple(tried))
    md = _MemberDemand(warm, recommender, cfg)
    with_recs = [replace(best, recs_weight=w) for w in RECS_WEIGHTS]
    recs_hits = [replay(p, md) for p in with_recs]
    j = int(np.argmax([h.mean() for h in recs_hits]))
    helps = _measurably_better(recs_hits[j], best_hits, warm.days[counted])
    return ForecastChoice(best, with_recs[j], helps, tuple(tried))


# --------------------------------------------------------------------------- the simulation
_Replayed = npt.NDArray[np.bool_] | tuple[npt.NDArray[np.bool_], IntArray]
"""What a replay gives: per-play embedded flags, and for nightly fills the titles added per day."""

POLICIES = ("lru", "popularity", "openflix", "openflix+recs", "clairvoyant")
"""Policy families :func:`simulate` runs by default (``popularity`` = one per configured decay)."""


def policy_names(config: SimulationConfig, *, with_recs: bool = True) -> list[str]:
    """The names :func:`simulate` gives its policies by default, in order (to check one before a replay)."""
    names = ["lru", *(f"popularity-{d:g}" for d in config.popularity_decays), "openflix"]
    return [*names, *(["openflix+recs"] if with_recs else []), "clairvoyant"]


def simulate(
    plays: Plays | Interactions,
    *,
    config: SimulationConfig | None = None,
    policies: Sequence[str] = POLICIES,
    forecast: ForecastParams | None = None,
    recs_forecast: ForecastParams | None = None,
    recommender: RecommenderFactory | None = default_recommender,
    n_sites: int = 8,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Replay ``plays`` against each policy and count plays served embedded / at exchange / from origin.

    Parameters
    ----------
    plays:
        The plays, or an :class:`Interactions` whose events are replayed as
        plays (member id mod ``n_sites`` picks the site).
    policies:
        Names from :data:`POLICIES` (``popularity`` runs one policy per
        decay of ``config.popularity_decays``).
    forecast, recs_forecast:
        Knobs of the ``openflix`` and ``openflix+recs`` policies; chosen on
        the warm-up by :func:`choose_forecast` when not given.
    recommender:
        Factory of the model behind ``openflix+recs`` (None: that policy is skipped).
    progress:
        Told what the replay is doing as each step starts (e.g. a command's status line).
    """
    cfg = config or SimulationConfig()
    p = plays if isinstance(plays, Plays) else Plays.from_interactions(plays, n_sites=n_sites)
    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise DataError(f"unknown policies {sorted(unknown)}; choose from {', '.join(POLICIES)}")
    capacity = cfg.site_capacity(p.n_titles)
    warmup = cfg.warmup_days(p.n_days)
    if capacity < cfg.appliances_per_site:
        raise DataError(f"each site must store at least one title per appliance (capacity {capacity})")
    if warmup < 2:
        raise DataError(f"the data spans {p.n_days} days: too few for a warm-up of {cfg.warmup_share:.0%}")
    want_recs = "openflix+recs" in policies and recommender is not None
    if forecast is None or (want_recs and recs_forecast is None):
        choice = choose_forecast(p, cfg, recommender=recommender if want_recs else None, progress=progress)
        choice = replace(
            choice, forecast=forecast or choice.forecast, recs_forecast=recs_forecast or choice.recs_forecast
        )
    else:
        choice = ForecastChoice(forecast, recs_forecast if want_recs else None, False, ())
    forecast, recs_forecast = choice.forecast, choice.recs_forecast
    if progress is not None:
        progress("planning the exchange site")
    exchange = _exchange_holdings(p, cfg)
    results: list[PolicyResult] = []

    def run(name: str, description: str, embedded: Callable[[], _Replayed]) -> None:
        if progress is not None:
            progress(f"replaying {name}")
        t0 = time.perf_counter()
        out = embedded()
        hit, added = out if isinstance(out, tuple) else (out, None)
        emb, exc, org = _tiers(p, hit, exchange)
        seconds = time.perf_counter() - t0
        churn = None if added is None else float(added[warmup:].mean() / (capacity * p.n_sites))
        results.append(PolicyResult(name, description, emb, exc, org, warmup, seconds, churn, hit))

    for family in policies:
        if family == "lru":
            run("lru", f"LRU cache of {capacity:,} titles per site", lambda: _replay_lru(p, capacity))
        elif family == "popularity":
            for d in cfg.popularity_decays:
                plan = forecast_plan(p, ForecastParams(decay=d), capacity, cfg)
                run(f"popularity-{d:g}", f"global popularity, decay {d:g}/day", _bind(p, plan))
        elif family == "openflix":
            plan = forecast_plan(p, forecast, capacity, cfg)
            run("openflix", f"forecast: {forecast.describe()}", _bind(p, plan))
        elif family == "openflix+recs" and want_recs and recs_forecast is not None:
            assert recommender is not None
            md = _MemberDemand(p, recommender, cfg)
            plan = forecast_plan(p, recs_forecast, capacity, cfg, md)
            run("openflix+recs", f"forecast: {recs_forecast.describe()}", _bind(p, plan))
        elif family == "clairvoyant":
            run("clairvoyant", "that day's actual plays", _bind(p, _clairvoyant_plan(p, capacity, cfg)))
    return SimulationResult(
        policies=tuple(results),
        config=cfg,
        n_plays=p.n_plays,
        n_days=p.n_days,
        warmup_days=warmup,
        site_capacity=capacity,
        n_sites=p.n_sites,
        first_day=p.first_day,
        choice=choice,
    )


def _bind(plays: Plays, plan: Callable[[int], Holdings]) -> Callable[[], _Replayed]:
    return lambda: replay_nightly(plays, plan)


# --------------------------------------------------------------------------- plot
def plot(result: SimulationResult, path: str | Path, *, window: int = 7) -> Path:
    """Write a PNG of each policy's embedded share over a rolling ``window`` of days to ``path``.

    Needs matplotlib (the ``notebook`` or ``dev`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            "plotting the offload simulation needs matplotlib: pip install 'openflix[notebook]'"
        ) from exc
    out = Path(path)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    kernel = np.ones(window)
    for policy in result.policies:
        total = (policy.embedded + policy.exchange + policy.origin).astype(np.float64)
        served = np.convolve(policy.embedded.astype(np.float64), kernel, mode="valid")
        played = np.convolve(total, kernel, mode="valid")
        smooth = np.divide(served, played, out=np.full(served.shape, np.nan), where=played > 0)
        days = np.arange(window - 1, result.n_days)
        label = f"{policy.name} ({policy.embedded_ratio:.3f})"
        ax.plot(days, smooth, label=label, lw=2.0 if policy.name.startswith("openflix") else 1.2)
    ax.axvline(result.warmup_days, color="grey", ls="--", lw=1)
    ax.text(result.warmup_days + 1, 0.02, "counted from here", color="grey", fontsize=8)
    ax.set_xlabel("day of data")
    ax.set_ylabel(f"share of plays served embedded ({window} days)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("CDN offload: share of plays served from the member's embedded site")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
