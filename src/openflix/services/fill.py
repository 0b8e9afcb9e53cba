"""The nightly fill of one site: predicted demand -> copies -> placement -> per-appliance manifests.

A member belongs to the embedded sites whose ISP announces the address of
their latest play that carries one (events' ``client_ip``, any region).  A
member whose plays carry no address (MovieLens has no geography) belongs to
one embedded site of their stored region, by member id modulo the region's
embedded sites (in id order).  An exchange site serves its whole region.

Demand per title is the forecast of :func:`openflix.cdn.forecast.forecast_demand`
from the site's members' plays, as of the site's local start of the day
being filled — nothing from that day is used; a play's age is counted in
whole days back from that moment, so the evening before counts as
yesterday in every time zone.  "Now" for a dataset is the newest event in
the store when that is older than the clock (MovieLens ends years ago), so
the fill follows the data's own calendar: a day after the data ends (the
nightly clock's real date) is forecast from the data's last plays.

Tiers: exchange sites fill from the origin; embedded sites fill from the
nearest exchange site of their region (great-circle distance), or the
nearest anywhere when their region has none.  Only active appliances that
are healthy now are planned on; a draining, failed or silent appliance
keeps what it holds (no manifest) and is planned around, so the next fill
moves its share to the others.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine, func, select

from openflix import timeofday
from openflix.cdn import fill as core
from openflix.cdn.forecast import ForecastParams, forecast_demand
from openflix.cdn.inventory import SiteKind
from openflix.cdn.prefixes import Announcement, PrefixTable
from openflix.errors import NotFoundError
from openflix.services.openconnect import HEALTHY, health_state
from openflix.store import cdn as store
from openflix.store.db import translating
from openflix.store.schema import ISP, Event, Fill, Member, SitePrefix, Title
from openflix.store.schema import Site as SiteTable

if TYPE_CHECKING:
    from openflix.services.platform import Platform

__all__ = ["FillReport", "PlayLog", "due_sites", "fill_site", "fill_sites", "planned_day", "start_fill_clock"]

log = logging.getLogger("openflix.cdn")
DAY = 86_400
WINDOW_DAYS = 365
"""Days of plays the forecast reads (a play's weight is 0.99 per day of age: 365 days -> 2.5%)."""
FORECAST = ForecastParams(decay=0.99, new_title_prior=10.0, unwatched_weight=0.3, activity_decay=0.5)
"""The forecast's knobs: those the offload simulation chose on its warm-up days (docs/benchmarks.md)."""


@dataclass(frozen=True)
class FillReport:
    """What one site's fill planned: copies placed, titles added and deleted, seconds taken."""

    site: str
    day: str
    source: str
    appliances: int
    skipped: list[str]
    titles: int
    copies: int
    added: int
    deleted: int
    seconds: float
    """Planning and recording this site (the run's one read of the plays not included)."""
    fill_id: int | None
    added_from_origin: int = 0
    """Titles added that the source exchange site does not hold: those come from the origin."""


def _distance_km(a: Any, b: Any) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(min(1.0, h)))


def source_of(site: Any, sites: Sequence[Any]) -> str:
    """Where a site fills from: ``origin`` for an exchange site, else its nearest exchange site's name."""
    if site.kind == SiteKind.EXCHANGE:
        return "origin"
    exchanges = [s for s in sites if s.kind == SiteKind.EXCHANGE]
    if not exchanges:
        return "origin"
    same = [s for s in exchanges if s.region == site.region] or exchanges
    return str(min(same, key=lambda s: (_distance_km(site, s), s.id)).name)


@dataclass(frozen=True)
class PlayLog:
    """The plays one fill run reads, loaded once for every site it plans.

    Plays from ``WINDOW_DAYS`` before the earliest site's day up to the latest
    site's day (in time order), with each member's region as an integer code;
    every title's plays before the earliest day (the tie-breaking floor); and
    the plays that carry the client's address, each with the embedded sites
    whose ISP announces it.  Each site reads only what came before its own day.
    """

    member: npt.NDArray[np.int64]
    title: npt.NDArray[np.int64]
    """Title index into the run's sorted title ids."""
    ts: npt.NDArray[np.int64]
    region: npt.NDArray[np.int64]
    """Code of the member's region in ``regions``."""
    regions: list[str]
    member_ids: npt.NDArray[np.int64]
    member_regions: npt.NDArray[np.int64]
    """Every member's id and region code (in ``regions``; -1: a region no play has)."""
    first_before: int
    counts_before: npt.NDArray[np.float64]
    """``(n_titles,)`` plays of each title before ``first_before`` (Unix s)."""
    addressed: npt.NDArray[np.int64]
    """Row indices of the plays (kind ``play``) that carry an address, in time order."""
    address_sites: list[npt.NDArray[np.int64]]
    """For each of those plays, the embedded sites whose ISP announces its address (maybe none)."""
    _located: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def load(
        cls, engine: Engine, titles: npt.NDArray[np.int64], first_before: int, last_before: int
    ) -> PlayLog:
        """Plays in ``[first_before - WINDOW_DAYS, last_before)``, counts before ``first_before`` (Unix s)."""
        plays = (
            select(Event.member_id, Event.title_id, Event.ts, Event.kind, Event.client_ip, Member.region)
            .join(Member, Member.id == Event.member_id)
            .where(Event.ts >= first_before - WINDOW_DAYS * DAY, Event.ts < last_before)
            .order_by(Event.ts, Event.id)
        )
        alltime = select(Event.title_id, func.count()).where(Event.ts < first_before).group_by(Event.title_id)
        with translating(engine), engine.connect() as conn:
            rows = pd.read_sql_query(plays, conn)
            counts = pd.read_sql_query(alltime, conn)
            members = pd.read_sql_query(select(Member.id, Member.region), conn)
            announced = conn.execute(select(SitePrefix.prefix, ISP.name, SitePrefix.site_id).join(ISP)).all()
        prefixes = PrefixTable(Announcement(p, isp, site) for p, isp, site in announced)
        addressed = np.flatnonzero((rows["kind"] == "play").to_numpy() & rows["client_ip"].notna().to_numpy())
        ips = rows["client_ip"].to_numpy()[addressed]
        sites_of = {ip: np.array(m.sites if (m := prefixes.lookup(ip)) else (), np.int64) for ip in set(ips)}
        codes, regions = pd.factorize(rows["region"])
        before = np.zeros(titles.size)
        if len(counts):
            at = np.searchsorted(titles, counts.iloc[:, 0].to_numpy(np.int64))
            before[at] = counts.iloc[:, 1].to_numpy()
        return cls(
            member=rows["member_id"].to_numpy(np.int64),
            title=np.searchsorted(titles, rows["title_id"].to_numpy(np.int64)),
            ts=rows["ts"].to_numpy(np.int64),
            region=codes.astype(np.int64),
            regions=[str(r) for r in regions],
            member_ids=members["id"].to_numpy(np.int64),
            member_regions=pd.Index(regions).get_indexer(members["region"]).astype(np.int64),
            first_before=first_before,
            counts_before=before,
            addressed=addressed.astype(np.int64),
            address_sites=[sites_of[ip] for ip in ips],
        )

    def region_code(self, region: str) -> int:
        """The code of ``region`` (-1 when no play is from it)."""
        return self.regions.index(region) if region in self.regions else -1

    def located(
        self, before: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """As of ``before`` (Unix s): the members with an addressed play before it, and (member, site)
        pairs for the embedded sites whose ISP announces the address of each one's latest such play."""
        if before not in self._located:
            k = int(np.searchsorted(self.ts[self.addressed], before))  # plays before the day only
            members = self.member[self.addressed[:k]]
            # the latest play of each member: the first occurrence in reverse time order
            located, first = np.unique(members[::-1], return_index=True)
            latest = (k - 1 - first).tolist()
            sites = [self.address_sites[i] for i in latest]
            counts = np.array([len(x) for x in sites], dtype=np.int64)
            pair_site = np.concatenate([*sites, np.empty(0, np.int64)])
            self._located[before] = (located, np.repeat(located, counts), pair_site)
        return self._located[before]


def site_members(log: PlayLog, site: Any, sites: Sequence[Any], before: int) -> npt.NDArray[np.int64] | None:
    """The member ids a site serves as of ``before`` (Unix s; ``None``: every member of its
    region, for an exchange site).

    A member whose plays carry addresses belongs to the embedded sites whose
    ISP announces the address of their latest such play before the day (any
    region); a member without one to one embedded site of their region, by
    member id modulo the region's embedded sites.
    """
    if site.kind == SiteKind.EXCHANGE:
        return None
    embedded = sorted(s.id for s in sites if s.kind == SiteKind.EMBEDDED and s.region == site.region)
    code = log.region_code(site.region)
    located, pair_member, pair_site = log.located(before)
    ids = log.member_ids[log.member_regions == code] if code >= 0 else np.empty(0, np.int64)
    ids = ids[~np.isin(ids, located)]
    spread = ids[ids % len(embedded) == embedded.index(site.id)]
    return np.union1d(spread, pair_member[pair_site == site.id])


def demand(
    log: PlayLog, site: Any, sites: Sequence[Any], before: int, n_titles: int
) -> npt.NDArray[np.float64]:
    """Predicted plays per title at the site on the day planned from the plays before ``before``
    (Unix s; see :func:`planned_day`): ``(n_titles,)``.

    :func:`openflix.cdn.forecast.forecast_demand` over the site's members'
    plays of the last ``WINDOW_DAYS`` before that day, plus a tie-breaking
    floor of every title's all-time share (a millionth of a play), so a site
    with room to spare fills it with what was ever popular.
    """
    recent = (log.ts >= log.first_before) & (log.ts < before)
    counts = log.counts_before + np.bincount(log.title[recent], minlength=n_titles)
    floor = counts / counts.sum() * 1e-6 if counts.sum() > 0 else np.zeros(n_titles)
    since = before - WINDOW_DAYS * DAY
    keep = (log.ts < before) & (log.ts >= since)
    members = site_members(log, site, sites, before)
    if members is None:
        keep &= log.region == log.region_code(site.region)
    else:
        keep &= np.isin(log.member, members)
    if not keep.any():
        return floor
    _, member_index = np.unique(log.member[keep], return_inverse=True)
    predicted: npt.NDArray[np.float64] = forecast_demand(
        np.zeros(int(keep.sum()), dtype=np.int64),
        member_index,
        log.title[keep],
        (log.ts[keep] - before) // DAY,  # days counted back from ``before``: the last 24 h are day -1
        day=0,
        n_sites=1,
        n_titles=n_titles,
        params=FORECAST,
    )[0]
    return predicted + floor


def data_now(engine: Engine) -> int:
    """ "Now" for fills: the clock, or the newest event's time when the data ends earlier (Unix s)."""
    with translating(engine), engine.connect() as conn:
        newest = conn.execute(select(func.max(Event.ts))).scalar()
    now = int(time.time())
    return now if newest is None else min(now, int(newest) + 1)


def fill_site(
    engine: Engine, site_name: str, *, title_gb: float, stale_s: float, day: date | None = None
) -> FillReport:
    """Plan and record one site's fill for ``day`` (default: the site's local today)."""
    return next(fill_sites(engine, [site_name], title_gb=title_gb, stale_s=stale_s, day=day))


def fill_sites(
    engine: Engine, site_names: Sequence[str], *, title_gb: float, stale_s: float, day: date | None = None
) -> Iterator[FillReport]:
    """Plan and record each site's fill in turn (give exchange sites first: see :func:`fill_order`).

    The plays are read once for all of them; each site's demand still uses
    only plays before the start of its own ``day`` (default: the site's
    local today).  Unknown names are refused before anything is planned.
    """
    with translating(engine), engine.connect() as conn:
        sites = list(conn.execute(select(SiteTable).order_by(SiteTable.id)).all())
        titles = np.array(conn.execute(select(Title.id).order_by(Title.id)).scalars().all(), dtype=np.int64)
    by_name = {s.name: s for s in sites}
    unknown = [n for n in site_names if n not in by_name]
    if unknown:
        raise NotFoundError(f"site {unknown[0]!r} does not exist")
    now = data_now(engine)
    starts = {n: planned_day(by_name[n], now, day) for n in site_names}
    if not starts:
        return
    log = PlayLog.load(engine, titles, min(s for _, s in starts.values()), max(s for _, s in starts.values()))
    for name in site_names:
        local_day, start_of_day = starts[name]
        yield _fill_one(engine, by_name[name], sites, titles, log, local_day, start_of_day, title_gb, stale_s)


def planned_day(site: Any, now: int, day: date | None) -> tuple[date, int]:
    """The site's day (``day``, or its local date at ``now``) and where its forecast's plays end (Unix s):
    the day's local start, or ``now`` when that comes first.

    ``now`` is :func:`data_now`: a day past the end of the data (the nightly
    clock's real date on MovieLens, which ends years ago) is forecast from
    the data's last plays, not from an empty window.
    """
    zone = ZoneInfo(site.timezone)
    local = day or datetime.fromtimestamp(now, zone).date()
    return local, min(now, int(datetime(local.year, local.month, local.day, tzinfo=zone).timestamp()))


def _fill_one(
    engine: Engine,
    site: Any,
    sites: Sequence[Any],
    titles: npt.NDArray[np.int64],
    log: PlayLog,
    day: date,
    start_of_day: int,
    title_gb: float,
    stale_s: float,
) -> FillReport:
    started = time.perf_counter()
    with translating(engine), engine.connect() as conn:
        rows = store.appliance_rows(conn, site_id=site.id)
        current = store.holdings(conn, [r.id for r in rows])
    clock = time.time()
    usable = [r for r in rows if r.status == "active" and health_state(r, clock, stale_s) in HEALTHY]
    skipped = [
        f"{r.serial} ({r.status if r.status != 'active' else health_state(r, clock, stale_s)})"
        for r in rows
        if r not in usable
    ]
    source = source_of(site, sites)
    capacities = [math.floor(r.storage_tb * 1000.0 / title_gb) for r in usable]
    wanted = demand(log, site, sites, start_of_day, titles.size)
    copies = core.copies_for(wanted, len(usable), float(sum(capacities)))
    keep = copies > 0
    plan = (
        core.place(titles[keep], copies[keep], [r.id for r in usable], [float(c) for c in capacities])
        if usable
        else {}
    )
    manifests = [
        (m.appliance_id, m.add, m.delete)
        for m in core.manifests({a: current.get(a, np.empty(0, np.int64)) for a in plan}, plan)
    ]
    with translating(engine), engine.begin() as conn:
        fill_id = (
            store.record_fill(
                conn,
                site_id=site.id,
                day=day.isoformat(),
                source=source,
                plan=plan,
                manifests=manifests,
                now=int(clock),
            )
            if plan
            else None
        )
    added = np.concatenate([a for _, a, _ in manifests] or [np.empty(0, np.int64)])
    return FillReport(
        site.name,
        day.isoformat(),
        source,
        len(usable),
        skipped,
        int(keep.sum()),
        int(sum(len(v) for v in plan.values())),
        int(added.size),
        int(sum(len(d) for _, _, d in manifests)),
        time.perf_counter() - started,
        fill_id,
        int(added.size) if source == "origin" else _missing_at(engine, sites, source, added),
    )


def _missing_at(engine: Engine, sites: Sequence[Any], source: str, titles: npt.NDArray[np.int64]) -> int:
    """How many of ``titles`` no appliance of the site ``source`` holds."""
    site_id = next(s.id for s in sites if s.name == source)
    with translating(engine), engine.connect() as conn:
        ids = [r.id for r in store.appliance_rows(conn, site_id=site_id)]
        held = store.holdings(conn, ids)
    there = np.concatenate([*held.values(), np.empty(0, np.int64)])
    return int(np.count_nonzero(~np.isin(titles, there)))


def fill_order(engine: Engine) -> list[str]:
    """Every site's name, exchange sites first (embedded sites fill from them)."""
    with translating(engine), engine.connect() as conn:
        sites = conn.execute(select(SiteTable.name, SiteTable.kind).order_by(SiteTable.id)).all()
    return [n for n, k in sites if k == SiteKind.EXCHANGE] + [n for n, k in sites if k != SiteKind.EXCHANGE]


_SAID: set[tuple[str, str]] = set()
"""(site, fill window) pairs whose window was found never to come, and said so in the log."""


def due_sites(engine: Engine, now: datetime) -> list[tuple[str, str]]:
    """Sites inside their fill window at ``now`` with no fill recorded for that local day: (site, day).

    The day is the local date the window ends on: a window across midnight
    (``22:00-02:00``) fills for the day it leads into, from the plays up to
    when it runs.

    An embedded site whose source exchange site is itself due waits for it
    during the first half of its own window (so it copies the new plan, not
    yesterday's), and no longer: an exchange whose fill fails or finds no
    usable appliance records nothing, and must not hold its sites all night.
    """
    with translating(engine), engine.connect() as conn:
        sites = conn.execute(select(SiteTable)).all()
        done = set(conn.execute(select(Fill.site_id, Fill.day)).all())
    pending: dict[str, str] = {}
    patient: set[str] = set()  # in the first half of their window
    for s in sites:
        local = now.astimezone(ZoneInfo(s.timezone))
        try:
            start, end = timeofday.window(s.fill_window)
        except ValueError as exc:  # stored before windows were checked (e.g. 03:00-03:00: it never came)
            if (s.name, s.fill_window) not in _SAID:  # once per process, not at every tick of the clock
                _SAID.add((s.name, s.fill_window))
                log.warning("site %s is never filled on schedule: fill_window %s", s.name, exc)
            continue
        minutes = local.hour * 60 + local.minute
        inside = start <= minutes < end if start <= end else (minutes >= start or minutes < end)
        # the day the fill is for: a window across midnight (22:00-02:00) prepares the day it ends on
        day = (local + timedelta(days=1)).date() if start > end and minutes >= start else local.date()
        if inside and (s.id, day.isoformat()) not in done:
            pending[s.name] = day.isoformat()
            if (minutes - start) % (24 * 60) < ((end - start) % (24 * 60) or 24 * 60) / 2:
                patient.add(s.name)
    return [
        (s.name, pending[s.name])
        for s in sites
        if s.name in pending and not (s.name in patient and source_of(s, sites) in pending)
    ]


def start_fill_clock(
    platform: Platform,
    interval: float = 60.0,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
) -> threading.Thread | None:
    """Every ``interval`` s, submit ``fill-<site>-<local day>`` for each site inside its fill window.

    ``OPENFLIX_FILL=off`` turns the clock off (``None``).  Setting ``stop``
    ends the thread; ``clock`` gives the time (UTC now by default).
    """
    if platform.settings.fill.strip().lower() == "off":
        return None
    stop = stop or threading.Event()
    now = clock or (lambda: datetime.now(UTC))

    def loop() -> None:
        while not stop.wait(interval):
            try:
                for site, day in due_sites(platform.engine, now()):
                    platform.jobs.submit("fill", {"site": site, "day": day}, job_id=f"fill-{site}-{day}")
            except Exception:
                log.exception("could not submit the fills that are due")

    thread = threading.Thread(target=loop, name="openflix-fill-clock", daemon=True)
    thread.start()
    return thread
