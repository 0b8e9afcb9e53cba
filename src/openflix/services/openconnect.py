"""Open Connect use cases: the inventory, health reports, steering with signed URLs.

Every change to the inventory — a whole-topology import or one site, ISP,
model or appliance through the API — goes through the same path: the stored
topology is read, changed, validated *completely* by
:func:`~openflix.cdn.topology.parse` and synced, in one transaction.  So
nothing inconsistent is ever written, and a refused change writes nothing.

Steering runs on a per-process :class:`SteeringService` snapshot, rebuilt
when one of the store's change counters moves (an appliance drained, a
component failed, a fill landed) — checked on every request, so such a
change steers the next playback — and, on a background thread, once it is
``SNAPSHOT_MAX_AGE`` seconds old, so load headroom and stale reports are
followed too without a request waiting for the build (a snapshot six times
that old, in a worker that sat idle, is rebuilt before the request is
answered).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from openflix.cdn.inventory import Appliance, ApplianceStatus, Site, SiteKind
from openflix.cdn.prefixes import Announcement, PrefixTable, normalize_ip, normalize_prefix
from openflix.cdn.signing import ORIGIN, SigningKeys, sign_url, url_prefix
from openflix.cdn.steering import Decision, Health, Holders, Steering
from openflix.cdn.topology import DocPath, ModelDoc, Topology, parse
from openflix.errors import ConfigError, ConflictError, DataError, NotFoundError
from openflix.settings import Settings
from openflix.store import cdn as store
from openflix.store.db import translating
from openflix.store.reader import HotReader
from openflix.store.schema import ISP, ApplianceModel, Component, RegionPrefix, SitePrefix, Title
from openflix.store.schema import Appliance as ApplianceTable
from openflix.store.schema import Site as SiteTable

__all__ = [
    "HEALTHY",
    "HealthView",
    "SteerResult",
    "SteeringService",
    "apply_manifest",
    "apply_pending",
    "change_topology",
    "components_of",
    "create_component",
    "delete_component",
    "export_topology",
    "get_component",
    "health_state",
    "health_view",
    "import_topology",
    "list_components",
    "report_fleet",
    "report_health",
    "signing_keys",
    "update_component",
]

log = logging.getLogger("openflix.cdn")

HEALTHY = ("ok", "degraded")
"""Worst-component states steering still sends playbacks to (a degraded disk still serves)."""
SNAPSHOT_MAX_AGE = 5.0
"""Seconds after which a steering snapshot is rebuilt on a background thread, even when nothing was
changed through the store (load headroom, reports gone stale); requests meanwhile use the one they have."""
SNAPSHOT_HARD_AGE_FACTOR = 6
"""A snapshot older than this many ``SNAPSHOT_MAX_AGE`` (a worker that sat idle, or background builds
that keep failing) is rebuilt before the request that finds it is answered."""
COPY_MAX_AGE = 60.0
"""Seconds a process keeps its copy of the placement or of the inventory document at most, even when
the change counters say nothing changed (a change made around the store is seen within this; the
placement is then read again in the background, so within this plus that read)."""
KEY_FILE = "openflix-url-keys"
"""Where the embedded default keeps its generated URL signing key (working directory, mode 0600)."""


def import_topology(engine: Engine, topo: Topology) -> store.SyncReport:
    """Make the stored inventory equal to ``topo``, in one transaction (none when nothing changes)."""
    with translating(engine), _unique_swaps(), engine.connect() as conn, conn.begin() as tx:
        # takes the write locks first: concurrent changes queue, none is lost; ``placement`` before any
        # appliance row, in the order fills and applied manifests take it (no deadlock with them)
        store.bump(conn, "inventory", "placement")
        report = store.sync_topology(conn, topo)
        if not report.total():  # the counters stay: no server rebuilds its steering for nothing
            tx.rollback()
        return report


@contextmanager
def _unique_swaps() -> Iterator[None]:
    """A sync that swaps unique values (two appliances trading hostnames, two ISPs trading ASNs) is
    refused by the database row by row: say so, as a conflict, instead of failing."""
    try:
        yield
    except IntegrityError as exc:
        raise ConflictError(
            "the change gives a hostname, serial, name or ASN to one item while another still holds it "
            "(e.g. two appliances trading hostnames); apply it in two steps "
            f"({str(exc.orig).splitlines()[0]})"
        ) from None


def export_topology(engine: Engine) -> Topology:
    """The stored inventory as a topology."""
    with translating(engine), engine.connect() as conn:
        return store.read_topology(conn)


def change_topology(
    engine: Engine,
    change: Callable[[dict[str, Any]], Any],
    roots: Callable[[dict[str, Any]], Mapping[DocPath, str]] | None = None,
) -> tuple[Topology, Any]:
    """Apply ``change`` to the stored topology document, validate the result completely and store it.

    ``change`` edits the plain document in place and returns what the caller
    wants back (e.g. the name of what it added).  Raises
    :class:`~openflix.errors.DataError` (nothing written) when the result is
    inconsistent; ``roots(doc)``, given, names the changed parts of the
    document as the request did (``{("sites", 56): "body"}``), so a problem
    there reads ``body.timezone`` rather than ``inventory: sites[56].timezone``.
    """
    with translating(engine), _unique_swaps(), engine.begin() as conn:
        store.bump(conn, "inventory", "placement")  # the locks first, as in import_topology
        doc = store.read_topology(conn).to_document()
        result = change(doc)
        topo = parse(doc, source="inventory", roots=roots(doc) if roots is not None else None)
        store.sync_topology(conn, topo)
        return topo, result


@dataclass(frozen=True)
class HealthView:
    """An appliance's health as steering sees it.

    ``state``: ``ok``, ``degraded``, ``failed`` (worst component) or ``unknown``
    (no report within the stale interval); ``headroom`` is the share of its
    throughput free, 0..1.
    """

    appliance_id: int
    state: str
    reported_at: int | None
    load: float | None
    served_gbps: float | None
    headroom: float
    components: dict[str, str] = field(default_factory=dict)


def _headroom(row: store.ApplianceRow) -> float:
    used = max(row.load or 0.0, (row.served_gbps or 0.0) / row.throughput_gbps)
    return float(min(1.0, max(0.0, 1.0 - used)))


def health_state(row: store.ApplianceRow, now: float, stale_s: float) -> str:
    """``ok``, ``degraded`` or ``failed`` (worst component), or ``unknown`` when its report is stale."""
    if row.reported_at is None or now - row.reported_at > stale_s:
        return "unknown"
    return row.worst


def health_view(engine: Engine, appliance_id: int, *, stale_s: float, now: float | None = None) -> HealthView:
    """An appliance's health and the state of each of its components."""
    now = time.time() if now is None else now
    with translating(engine), engine.connect() as conn:
        row = store.appliance_row(conn, appliance_id)
        if row is None:
            raise NotFoundError(f"appliance {appliance_id} does not exist")
        parts = store.component_states(conn, appliance_id)
    return HealthView(
        row.id,
        health_state(row, now, stale_s),
        row.reported_at,
        row.load,
        row.served_gbps,
        _headroom(row),
        parts,
    )


def report_health(
    engine: Engine,
    appliance_id: int,
    *,
    load: float,
    served_gbps: float,
    components: Mapping[str, str],
    stale_s: float,
    now: float | None = None,
) -> HealthView:
    """Record an appliance's health report: load 0..1, served Gbps, component states by name.

    Components not named keep their state.  An unknown appliance is
    :class:`NotFoundError`; a component the appliance does not have, or an
    unknown state, is :class:`DataError` — and nothing is written.  When the
    report changes whether the appliance can be steered to, steering
    follows on the next request.
    """
    now = time.time() if now is None else now
    bad = {n: s for n, s in components.items() if s not in store.SEVERITY}
    if bad:
        name, state = next(iter(bad.items()))
        raise DataError(f"components.{name}: state must be one of ok, degraded, failed (got {state!r})")
    with translating(engine), engine.begin() as conn:
        before = store.appliance_row(conn, appliance_id)
        if before is None:
            raise NotFoundError(f"appliance {appliance_id} does not exist")
        have = store.component_states(conn, appliance_id)
        unknown = sorted(set(components) - set(have))
        if unknown:
            raise DataError(
                f"components: appliance {appliance_id} ({before.serial}) has no component "
                f"{', '.join(map(repr, unknown[:5]))}; it has {', '.join(sorted(have)[:8])}…"
            )
        changed = [name for name, state in components.items() if have[name] != state]
        for name in changed:
            conn.execute(
                update(Component)
                .where(Component.appliance_id == appliance_id, Component.name == name)
                .values(status=components[name])
            )
        if changed:
            store.bump(conn, "components")
        conn.execute(
            update(ApplianceTable)
            .where(ApplianceTable.id == appliance_id)
            .values(reported_at=int(now), load=load, served_gbps=served_gbps)
        )
        after = store.appliance_row(conn, appliance_id)
        assert after is not None
        was = health_state(before, now, stale_s) in HEALTHY
        if (after.worst in HEALTHY) != was or after.worst != before.worst:
            store.bump(conn, "health")
    return HealthView(
        appliance_id, after.worst, int(now), load, served_gbps, _headroom(after), {**have, **components}
    )


def report_fleet(engine: Engine, rng: np.random.Generator, *, stale_s: float) -> int:
    """A lab fleet: one health report from every active appliance (components as they are, a random
    load), and every manifest not applied yet applied at once; returns how many reported."""
    with translating(engine), engine.connect() as conn:
        rows = [r for r in store.appliance_rows(conn) if r.status == "active"]
    for r in rows:
        load = float(rng.uniform(0.05, 0.8))
        report_health(
            engine, r.id, load=load, served_gbps=load * r.throughput_gbps, components={}, stale_s=stale_s
        )
    apply_pending(engine)
    return len(rows)


def apply_pending(engine: Engine) -> int:
    """A lab fleet applies every manifest at once: mark all pending ones applied; returns how many."""
    with translating(engine), engine.begin() as conn:
        return store.apply_all_manifests(conn, int(time.time()))


def signing_keys(settings: Settings) -> SigningKeys:
    """The URL signing keys: ``OPENFLIX_URL_KEYS`` (the first key signs), or a generated local key file."""
    text = settings.url_keys.strip()
    if not text:
        path = Path(KEY_FILE)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"local:{secrets.token_hex(32)}\n")
        text = path.read_text().strip()
    first = text.split(",")[0].strip().partition(":")[0]
    if not first:
        raise ConfigError("OPENFLIX_URL_KEYS: expected KEY_ID:HEX_SECRET[,KEY_ID:HEX_SECRET…]")
    return SigningKeys.from_text(text, active=first)


@dataclass(frozen=True)
class SteerResult:
    """A steering decision with a signed URL per choice (expiring at ``expires``, Unix seconds)."""

    decision: Decision
    urls: tuple[str, ...]
    expires: int
    origin_url: str | None = None
    """When no appliance can serve: the origin's URL, signed for :data:`~openflix.cdn.signing.ORIGIN`."""


class _Snapshot:
    """One process's steering snapshot and what it was built from."""

    def __init__(
        self, steering: Steering, counters: tuple[int, ...], built: float, titles: frozenset[int]
    ) -> None:
        self.steering = steering
        self.counters = counters
        self.built = built
        self.titles = titles

    def with_placement(self, placement: _Placement, counters: tuple[int, ...]) -> _Snapshot:
        """The same snapshot (and age) with another placement, under ``counters``."""
        return _Snapshot(self.steering.with_placement(placement.holders), counters, self.built, self.titles)


class SteeringService:
    """Steering for one process: snapshots rebuilt on change, decisions signed.

    Parameters
    ----------
    engine:
        The store.
    settings:
        ``health_stale_s`` (a report older than this counts as unknown),
        ``url_ttl_s`` (how long a URL is valid), ``url_keys``.
    """

    def __init__(self, engine: Engine, settings: Settings, *, reader: HotReader | None = None) -> None:
        self.engine = engine
        self.settings = settings
        try:
            url_prefix(settings.origin_url)
        except DataError as exc:  # the setting, not a request: said when the service starts
            raise ConfigError(f"OPENFLIX_ORIGIN_URL: {exc}") from None
        self.reader = reader or HotReader(engine)
        """Reads the change counters at every decision."""
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._placement: _Placement | None = None
        self.rereader: threading.Thread | None = None
        """The background thread reading the whole placement again, while it runs."""
        self.refresher: threading.Thread | None = None
        """The background thread rebuilding a snapshot older than ``max_age``, while it runs."""
        self.max_age = SNAPSHOT_MAX_AGE
        """Seconds after which a snapshot is rebuilt in the background (see :data:`SNAPSHOT_MAX_AGE`)."""
        self._retry_at = 0.0
        self._keys: SigningKeys | None = None

    @property
    def keys(self) -> SigningKeys:
        if self._keys is None:
            self._keys = signing_keys(self.settings)
        return self._keys

    def snapshot(self) -> Steering:
        """The current steering snapshot: rebuilt before it is returned when the store changed or it is
        older than ``6 * max_age``; past ``max_age``, rebuilt in the background."""
        return self._current().steering

    def _current(self) -> _Snapshot:
        counters = store.read_counters(self.reader)
        snap = self._snapshot
        hard = SNAPSHOT_HARD_AGE_FACTOR * self.max_age
        if snap is None or snap.counters != counters or time.monotonic() - snap.built > hard:
            with self._lock:
                snap = self._snapshot
                if snap is None or snap.counters[:2] != counters[:2] or time.monotonic() - snap.built > hard:
                    # the inventory or an appliance's steerability changed, or the worker sat idle
                    snap = self._fresh(counters, self._advance_placement(counters[2], counters[0]))
                elif snap.counters != counters:
                    # only the placement moved (a fill, a manifest applied): the rest stands
                    snap = snap.with_placement(self._advance_placement(counters[2], counters[0]), counters)
                self._snapshot = snap
        if time.monotonic() - snap.built > self.max_age:
            self._refresh_in_background()
        return snap

    def _fresh(self, counters: tuple[int, ...], placement: _Placement) -> _Snapshot:
        """A snapshot built whole at ``counters`` on ``placement`` (read at those counters)."""
        with translating(self.engine), self.engine.connect() as conn:
            titles = frozenset(conn.scalars(select(Title.id)).all())
        return _Snapshot(self._build(placement), counters, time.monotonic(), titles)

    def _refresh_in_background(self) -> None:
        """Build the snapshot again on a thread (load headroom, reports gone stale), while requests go on
        with the one they have: the age alone never makes a request wait for a build.  After a failed
        build the next try waits ``max_age``."""
        if time.monotonic() < self._retry_at or (self.refresher is not None and self.refresher.is_alive()):
            return
        with self._starting:
            self.refresher = _running(self.refresher, self._refresh, "openflix-steering")

    def _refresh(self) -> None:
        """Build a snapshot at the store's counters without the lock, and swap it in if nothing newer was
        meanwhile.  When the counters moved, a request brings the snapshot up to date first (and asks
        again)."""
        try:
            snap, placement = self._snapshot, self._placement
            if snap is None or placement is None or time.monotonic() - snap.built <= self.max_age:
                return
            with translating(self.engine), self.engine.connect() as conn:
                counters = store.counters(conn)
            at = (placement.inventory, counters[1], placement.rev)  # the placement's counters
            if snap.counters != counters or at != counters:
                return
            self._reread_when_old(placement)
            fresh = self._fresh(counters, placement)
            with self._lock:
                if self._snapshot is snap:
                    self._snapshot = fresh
        except Exception:  # steering goes on with what it has; the next try waits
            self._retry_at = time.monotonic() + self.max_age
            log.exception("could not rebuild the steering snapshot")

    def _advance_placement(self, rev: int, inventory: int) -> _Placement:
        """The placement at counter value ``rev``: read whole the first time, then advanced by reading
        again only the appliances whose manifests changed since (call with the lock held)."""
        placement = self._placement
        with translating(self.engine), self.engine.connect() as conn:
            if placement is None:
                placement = _Placement.read(conn, rev, inventory)
            elif placement.rev != rev or placement.inventory != inventory:
                placement = placement.advance(conn, rev, inventory)
        self._placement = placement
        self._reread_when_old(placement)
        return placement

    def _reread_when_old(self, placement: _Placement) -> None:
        """Older than ``COPY_MAX_AGE``, the placement is read whole again in the background
        (:meth:`_reread`), off the request path."""
        if time.monotonic() - placement.read_at <= COPY_MAX_AGE:
            return
        with self._starting:  # taken with or without the snapshot's lock, never the other way round
            self.rereader = _running(self.rereader, self._reread, "openflix-placement")

    def _reread(self) -> None:
        """Read every appliance's titles again (a change made around the store shows within
        ``COPY_MAX_AGE`` plus this read), caught up with what was advanced meanwhile, and swap it in."""
        try:
            with translating(self.engine), self.engine.connect() as conn:
                # the counters before the titles: the titles are at least this new
                inventory, rev = store.counters(conn, ("inventory", "placement"))
                fresh = _Placement.read(conn, rev, inventory)
                with self._lock:
                    current = self._placement
                    if current is not None and current.inventory != fresh.inventory:
                        return  # the inventory moved meanwhile: the request path reads it whole
                    if current is not None and current.rev > fresh.rev:
                        fresh = fresh.advance(conn, current.rev, inventory)
                    self._placement = fresh
                    if self._snapshot is not None:
                        self._snapshot = self._snapshot.with_placement(fresh, self._snapshot.counters)
        except Exception:  # the next request tries again; steering goes on with what it has
            log.exception("could not read the placement again")

    def _build(self, placement: _Placement) -> Steering:
        now = time.time()
        with translating(self.engine), self.engine.connect() as conn:
            sites = conn.execute(select(SiteTable)).all()
            rows = store.appliance_rows(conn)
            isp_names = dict(conn.execute(select(ISP.id, ISP.name)).all())
            announced = conn.execute(select(SitePrefix.prefix, SitePrefix.isp_id, SitePrefix.site_id)).all()
            region_prefixes = conn.execute(select(RegionPrefix.prefix, RegionPrefix.region)).all()
            default_region = store.meta(conn, "default_region")
        site_list = [
            Site(s.id, s.name, SiteKind(s.kind), s.region, s.country, s.latitude, s.longitude, s.timezone)
            for s in sites
        ]
        appliances = [Appliance(r.id, r.site_id, r.hostname, ApplianceStatus(r.status)) for r in rows]
        health = {
            r.id: Health(state in HEALTHY, _headroom(r))
            for r in rows
            if (state := health_state(r, now, self.settings.health_stale_s)) != "unknown"
        }
        prefixes = PrefixTable(Announcement(p, isp_names[i], s) for p, i, s in announced)
        regions = PrefixTable(Announcement(p, r, 0) for p, r in region_prefixes)
        return Steering(
            site_list,
            appliances,
            prefixes,
            placement.holders,
            health,
            regions=regions,
            default_region=default_region,
        )

    def steer(self, ip: str, title_id: int, n: int = 3, *, now: float | None = None) -> SteerResult:
        """Up to ``n`` signed playback URLs for ``ip`` to play ``title_id``, best first (none: origin).

        A malformed IP is :class:`DataError`; an unknown title :class:`NotFoundError`.
        """
        client = normalize_ip(ip)
        snap = self._current()
        if title_id not in snap.titles:  # the snapshot's titles; a title added since is looked up
            with translating(self.engine), self.engine.connect() as conn:
                if conn.execute(select(Title.id).where(Title.id == title_id)).first() is None:
                    raise NotFoundError(f"title {title_id} does not exist")
        decision = snap.steering.decide(client, title_id, n)
        expires = int(time.time() if now is None else now) + int(self.settings.url_ttl_s)
        keys = self.keys
        urls = tuple(
            sign_url(f"https://{c.hostname}/v1", title_id, c.appliance_id, client, expires, keys)
            for c in decision.choices
        )
        origin = None
        if decision.origin:  # the setting was checked when the service started
            origin = sign_url(self.settings.origin_url, title_id, ORIGIN, client, expires, keys)
        return SteerResult(decision, urls, expires, origin)


def _running(thread: threading.Thread | None, target: Callable[[], None], name: str) -> threading.Thread:
    """``thread`` while it still runs, else ``target`` started on a new daemon thread."""
    if thread is not None and thread.is_alive():
        return thread
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


_NOTHING = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class _Placement:
    """What each appliance can serve, as read at one value of the ``placement`` counter.

    ``servable``: appliance id -> sorted title ids; ``holders``: which
    appliances can serve each title (bytes the garbage collector does not
    walk); ``read_at``: ``time.monotonic()`` of the last whole read.
    """

    rev: int
    inventory: int
    """The ``inventory`` counter it was read at: an appliance removed, moved or added (its id may be a
    removed one's, on SQLite) changes holdings without a manifest, so any change reads it whole."""
    servable: dict[int, npt.NDArray[np.int64]]
    holders: Holders
    read_at: float

    @classmethod
    def read(cls, conn: Any, rev: int, inventory: int) -> _Placement:
        """Every appliance's servable titles."""
        servable = store.servable(conn)
        return cls(rev, inventory, servable, Holders.from_arrays(servable), time.monotonic())

    def advance(self, conn: Any, rev: int, inventory: int) -> _Placement:
        """The placement at ``rev``: the appliances whose manifests were written or applied since
        ``self.rev`` read again, the others kept.  Read whole when the inventory changed (or the
        database: its counters start elsewhere) or most appliances changed; kept as it is when ``rev``
        is older than its own (a request that read the counters before another advanced it)."""
        if inventory != self.inventory:
            return _Placement.read(conn, rev, inventory)
        if rev <= self.rev:
            return self
        changed = store.placement_changes(conn, self.rev, rev)
        if len(changed) > max(8, len(self.servable) // 2):
            return _Placement.read(conn, rev, inventory)
        fresh = store.servable(conn, changed)
        servable, moves = dict(self.servable), {}
        for a in changed:
            old, new = self.servable.get(a, _NOTHING), fresh.get(a, _NOTHING)
            moves[a] = (  # only what changed
                np.setdiff1d(new, old, assume_unique=True).tolist(),
                np.setdiff1d(old, new, assume_unique=True).tolist(),
            )
            if a in fresh:
                servable[a] = new
            else:
                servable.pop(a, None)
        return _Placement(rev, inventory, servable, self.holders.changed(moves), self.read_at)


# --- CRUD: one item of the inventory at a time, through the same complete validation ---------------


@dataclass(frozen=True)
class Kind:
    """A kind of inventory item: its list in the topology document, its table and natural key.

    ``refs`` are the (document list, field) pairs that name items of this
    kind: an item still named there cannot be deleted.
    """

    doc_key: str
    table: Any
    key: str
    refs: tuple[tuple[str, str], ...]
    noun: str


KINDS = {
    "sites": Kind("sites", SiteTable, "name", (("appliances", "site"), ("announcements", "site")), "site"),
    "isps": Kind("isps", ISP, "name", (("sites", "isp"), ("announcements", "isp")), "ISP"),
    "models": Kind("appliance_models", ApplianceModel, "name", (("appliances", "model"),), "appliance model"),
    "appliances": Kind("appliances", ApplianceTable, "serial", (), "appliance"),
}


def _ids(engine: Engine, kind: Kind) -> dict[str, int]:
    with translating(engine), engine.connect() as conn:
        return dict(conn.execute(select(getattr(kind.table, kind.key), kind.table.id)).all())


@dataclass(frozen=True)
class _Inventory:
    """The stored topology as read at one value of the ``inventory`` and ``components`` counters."""

    key: tuple[int, ...]
    read_at: float
    """``time.monotonic()`` when it was read."""
    topology: Topology
    document: dict[str, Any]
    ids: dict[str, dict[str, int]]
    """Kind name -> the item's name (serial for appliances) -> id."""


_inventories: weakref.WeakKeyDictionary[Engine, _Inventory] = weakref.WeakKeyDictionary()


def _inventory(engine: Engine) -> _Inventory:
    """The stored topology, read again only after a change to the inventory or to a component's state.

    The counters are read before the topology: a change that lands between
    the two leaves a newer topology under an older key, read again next time.
    """
    with translating(engine), engine.connect() as conn:
        key = store.counters(conn, ("inventory", "components"))
        hit = _inventories.get(engine)
        if hit is not None and hit.key == key and time.monotonic() - hit.read_at < COPY_MAX_AGE:
            return hit
        topology = store.read_topology(conn)
        ids: dict[str, dict[str, int]] = {}
        for name, k in KINDS.items():
            ids[name] = {str(a): int(b) for a, b in conn.execute(select(getattr(k.table, k.key), k.table.id))}
    inventory = _Inventory(key, time.monotonic(), topology, topology.to_document(), ids)
    _inventories[engine] = inventory
    return inventory


def list_items(engine: Engine, kind_name: str, *, stale_s: float | None = None) -> list[dict[str, Any]]:
    """Every item of a kind as its topology entry plus ``id`` (appliances: plus ``health``), in id order."""
    return _items(engine, kind_name, None, stale_s)


def get_item(engine: Engine, kind_name: str, item_id: int, *, stale_s: float | None = None) -> dict[str, Any]:
    """One item by id; :class:`NotFoundError` when there is none."""
    found = _items(engine, kind_name, item_id, stale_s)
    if not found:
        raise NotFoundError(f"{KINDS[kind_name].noun} {item_id} does not exist")
    return found[0]


def _items(engine: Engine, kind_name: str, only: int | None, stale_s: float | None) -> list[dict[str, Any]]:
    """The items of a kind (or the one with id ``only``) as the API shows them, in id order."""
    kind = KINDS[kind_name]
    inventory = _inventory(engine)
    ids = inventory.ids[kind_name]
    # an item removed between the two reads of the copy has no id: it is gone
    entries = [e for e in inventory.document[kind.doc_key] if e[kind.key] in ids]
    if only is not None:
        entries = [e for e in entries if ids[e[kind.key]] == only]
    items = [{"id": ids[e[kind.key]], **e} for e in entries]
    if kind_name == "appliances" and items:
        now = time.time()
        with translating(engine), engine.connect() as conn:
            rows = {r.id: r for r in store.appliance_rows(conn, appliance_id=only)}
        components = {a.serial: a.components for a in inventory.topology.appliances}
        items = [i for i in items if i["id"] in rows]  # one removed since the copy was read is gone
        for item in items:
            row = rows[item["id"]]
            item["components"] = [dict(c.__dict__) for c in components[item["serial"]]]
            item["health"] = health_state(row, now, stale_s or 300.0)
            item["headroom"] = _headroom(row)
    if kind_name == "sites":
        for item in items:
            item.setdefault("isp", None)
    return sorted(items, key=lambda i: i["id"])


def create_item(engine: Engine, kind_name: str, body: Mapping[str, Any]) -> int:
    """Add one item (fields as in the topology document); returns its id."""
    kind = KINDS[kind_name]

    def add(doc: dict[str, Any]) -> None:
        if any(item[kind.key] == body[kind.key] for item in doc[kind.doc_key]):
            raise ConflictError(f"{kind.noun} {body[kind.key]!r} exists already")
        doc[kind.doc_key].append(dict(body))

    change_topology(engine, add, _body_at(kind, body[kind.key]))
    return _ids(engine, kind)[body[kind.key]]


def _body_at(kind: Kind, name: str) -> Callable[[dict[str, Any]], dict[DocPath, str]]:
    """The document's entry of ``kind`` named ``name`` is the request's ``body``."""

    def roots(doc: dict[str, Any]) -> dict[DocPath, str]:
        at = [i for i, item in enumerate(doc[kind.doc_key]) if item.get(kind.key) == name]
        return {(kind.doc_key, at[-1]): "body"} if at else {}

    return roots


def update_item(engine: Engine, kind_name: str, item_id: int, changes: Mapping[str, Any]) -> None:
    """Change fields of one item (not its name or serial, which others refer to)."""
    kind = KINDS[kind_name]
    if kind.key in changes:
        raise DataError(
            f"{kind.key}: the {kind.key} of a {kind.noun} cannot change (it names it in the topology); "
            f"create a new {kind.noun} instead"
        )
    name = _name_of(engine, kind, item_id)

    def patch(doc: dict[str, Any]) -> None:
        item = next(i for i in doc[kind.doc_key] if i[kind.key] == name)
        for field_name, value in changes.items():
            if value is None:
                item.pop(field_name, None)
            else:
                item[field_name] = value

    change_topology(engine, patch, _body_at(kind, name))


def delete_item(engine: Engine, kind_name: str, item_id: int) -> None:
    """Remove one item; :class:`ConflictError` when other items still name it."""
    kind = KINDS[kind_name]
    name = _name_of(engine, kind, item_id)

    def remove(doc: dict[str, Any]) -> None:
        for list_key, field_name in kind.refs:
            users = [i for i in doc[list_key] if i.get(field_name) == name]
            if users:
                raise ConflictError(
                    f"{kind.noun} {name!r} is still named by {len(users)} of {list_key} "
                    f"(e.g. {_label(users[0])}); remove or move those first"
                )
        doc[kind.doc_key] = [i for i in doc[kind.doc_key] if i[kind.key] != name]

    change_topology(engine, remove)


def _label(item: Mapping[str, Any]) -> str:
    for key in ("serial", "name"):
        if key in item:
            return f"{item[key]!r}"
    return f"{item.get('isp')!r} to {item.get('site')!r}"


# --- components: the disks, NICs and PSUs of one appliance, each through the same whole validation ------


def list_components(
    engine: Engine,
    *,
    appliance_id: int | None = None,
    site: str | None = None,
    kind: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Every component of the fleet, filtered by equality on the fields given (an ``appliance_id``
    no appliance has matches nothing; :func:`components_of` says it does not exist).

    Each is ``{appliance, serial, site, name, kind, status}``, in appliance id
    order and, within an appliance, in its own order (the model's layout:
    disks, NICs, PSUs).
    """
    inventory = _inventory(engine)
    ids = inventory.ids["appliances"]
    out = [
        {"appliance": ids[a.serial], "serial": a.serial, "site": a.site, **c.__dict__}
        for a in inventory.topology.appliances
        if a.serial in ids
        and (appliance_id is None or ids[a.serial] == appliance_id)
        and (site is None or a.site == site)
        for c in a.components
        if (kind is None or c.kind == kind) and (status is None or c.status == status)
    ]
    return sorted(out, key=lambda c: c["appliance"])  # stable: each appliance keeps its order


def components_of(engine: Engine, appliance_id: int, **filters: str | None) -> list[dict[str, Any]]:
    """One appliance's components, filtered as by :func:`list_components`; :class:`NotFoundError` when
    there is no such appliance."""
    if appliance_id not in _inventory(engine).ids["appliances"].values():
        raise NotFoundError(f"appliance {appliance_id} does not exist")
    return list_components(engine, appliance_id=appliance_id, **filters)


def get_component(engine: Engine, appliance_id: int, name: str) -> dict[str, Any]:
    """One component of an appliance; :class:`NotFoundError` when the appliance or the component is not."""
    found = [c for c in components_of(engine, appliance_id) if c["name"] == name]
    if not found:
        raise NotFoundError(f"appliance {appliance_id} has no component {name!r}")
    return found[0]


def create_component(engine: Engine, appliance_id: int, body: Mapping[str, Any]) -> None:
    """Add a component (``name``, ``kind``, ``status`` default ``ok``) to an appliance."""

    def add(components: list[dict[str, Any]]) -> None:
        if any(c["name"] == body["name"] for c in components):
            raise ConflictError(f"appliance {appliance_id} has a component {body['name']!r} already")
        components.append({"status": "ok", **body})

    _change_components(engine, appliance_id, add)


def update_component(engine: Engine, appliance_id: int, name: str, changes: Mapping[str, Any]) -> None:
    """Change a component's ``kind`` or ``status`` (e.g. ``ok`` once a failed disk is replaced)."""
    if "name" in changes and changes["name"] != name:
        raise DataError("name: a component's name cannot change; add a new component instead")

    def patch(components: list[dict[str, Any]]) -> None:
        _find_component(components, appliance_id, name).update(changes)

    _change_components(engine, appliance_id, patch)


def delete_component(engine: Engine, appliance_id: int, name: str) -> None:
    """Remove a component from an appliance."""

    def remove(components: list[dict[str, Any]]) -> None:
        components.remove(_find_component(components, appliance_id, name))

    _change_components(engine, appliance_id, remove)


def _find_component(components: list[dict[str, Any]], appliance_id: int, name: str) -> dict[str, Any]:
    for c in components:
        if c["name"] == name:
            return c
    raise NotFoundError(f"appliance {appliance_id} has no component {name!r}")


def _change_components(
    engine: Engine, appliance_id: int, change: Callable[[list[dict[str, Any]]], None]
) -> None:
    """Apply ``change`` to the appliance's component list (its model's layout when it has none of its
    own) in the stored document, through :func:`change_topology`."""
    serial = _name_of(engine, KINDS["appliances"], appliance_id)

    def edit(doc: dict[str, Any]) -> None:
        entry = next(a for a in doc["appliances"] if a["serial"] == serial)
        if entry.get("components") is None:
            model = next(m for m in doc["appliance_models"] if m["name"] == entry["model"])
            entry["components"] = [c.__dict__.copy() for c in ModelDoc(**model).layout()]
        change(entry["components"])

    change_topology(engine, edit)


def _name_of(engine: Engine, kind: Kind, item_id: int) -> str:
    for name, i in _ids(engine, kind).items():
        if i == item_id:
            return name
    raise NotFoundError(f"{kind.noun} {item_id} does not exist")


def announce(
    engine: Engine, isp_id: int, site: str, prefixes: list[str], *, withdraw: bool = False
) -> list[str]:
    """Add (or withdraw) prefixes an ISP announces to one of its sites; returns the site's prefixes."""
    isp = _name_of(engine, KINDS["isps"], isp_id)

    def change(doc: dict[str, Any]) -> list[str]:
        entry = next((a for a in doc["announcements"] if a["isp"] == isp and a["site"] == site), None)
        if entry is None:
            if withdraw:
                raise NotFoundError(f"ISP {isp!r} announces nothing to site {site!r}")
            entry = {"isp": isp, "site": site, "prefixes": []}
            doc["announcements"].append(entry)
        if withdraw:
            gone = {normalize_prefix(p, "prefixes") for p in prefixes}
            missing = gone - set(entry["prefixes"])
            if missing:
                raise NotFoundError(f"ISP {isp!r} does not announce {', '.join(sorted(missing))} to {site!r}")
            entry["prefixes"] = [p for p in entry["prefixes"] if p not in gone]
        else:
            entry["prefixes"] = [*entry["prefixes"], *prefixes]
        return list(entry["prefixes"])

    def roots(doc: dict[str, Any]) -> dict[DocPath, str]:
        """The prefixes added last are the body's, in its order."""
        at = [i for i, a in enumerate(doc["announcements"]) if a["isp"] == isp and a["site"] == site]
        if not at or withdraw:
            return {}
        first = len(doc["announcements"][at[0]]["prefixes"]) - len(prefixes)
        return {
            ("announcements", at[0], "prefixes", first + i): f"body.prefixes[{i}]"
            for i in range(len(prefixes))
        }

    _, result = change_topology(engine, change, roots)
    topo = export_topology(engine)
    entry = next((a for a in topo.announcements if a.isp == isp and a.site == site), None)
    return list(entry.prefixes) if entry is not None else list(result)


def manifest(engine: Engine, appliance_id: int) -> dict[str, Any]:
    """What an appliance fetches and deletes in its next fill window, and how many titles it holds."""
    with translating(engine), engine.connect() as conn:
        if store.appliance_row(conn, appliance_id) is None:
            raise NotFoundError(f"appliance {appliance_id} does not exist")
        latest = store.latest_manifest(conn, appliance_id) or {
            "fill_id": None, "since": None, "day": None, "source": None, "add": [], "delete": [],
            "applied_at": None,
        }  # fmt: skip
        held = store.holdings(conn, [appliance_id]).get(appliance_id)
    return {"appliance_id": appliance_id, **latest, "holds": 0 if held is None else int(held.size)}


def apply_manifest(
    engine: Engine, appliance_id: int, fill_id: int, *, now: float | None = None
) -> dict[str, int]:
    """An appliance says it applied its manifest of ``fill_id`` (and so every earlier one).

    Steering sends a title added by a fill to the appliance only from then on.
    Unknown appliances, and fills the appliance has no manifest of, are
    :class:`NotFoundError`.
    """
    with translating(engine), engine.begin() as conn:
        if store.appliance_row(conn, appliance_id) is None:
            raise NotFoundError(f"appliance {appliance_id} does not exist")
        marked, pending = store.apply_manifest(
            conn, appliance_id, fill_id, int(time.time() if now is None else now)
        )
    return {"appliance_id": appliance_id, "fill_id": fill_id, "applied": marked, "pending": pending}
