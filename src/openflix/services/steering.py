"""Steering in a serving process: a snapshot of the inventory, health and placement, and signed URLs.

Steering runs on a per-process :class:`SteeringService` snapshot, rebuilt
when one of the store's change counters moves (an appliance drained, a
component failed, a fill landed) — checked on every request, so such a
change steers the next playback — and, on a background thread, once it is
``SNAPSHOT_MAX_AGE`` seconds old, so load headroom and stale reports are
followed too without a request waiting for the build (a snapshot six times
that old, in a worker that sat idle, is rebuilt before the request is
answered).  Only the appliances whose manifests changed are read again when
a fill lands or a manifest is applied (:class:`_Placement`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select

from openflix.cdn.inventory import Appliance, ApplianceStatus, Site, SiteKind
from openflix.cdn.prefixes import Announcement, PrefixTable, normalize_ip
from openflix.cdn.signing import ORIGIN, SigningKeys, sign_url, url_prefix
from openflix.cdn.steering import Decision, Health, Holders, Steering
from openflix.errors import ConfigError, DataError, NotFoundError
from openflix.services.openconnect import COPY_MAX_AGE, HEALTHY, health_state, load_headroom
from openflix.settings import Settings
from openflix.store import cdn as store
from openflix.store.db import translating
from openflix.store.reader import HotReader
from openflix.store.schema import ISP, RegionPrefix, SitePrefix, Title
from openflix.store.schema import Site as SiteTable

__all__ = ["SNAPSHOT_MAX_AGE", "SteerResult", "SteeringService", "signing_keys"]

log = logging.getLogger("openflix.cdn")

SNAPSHOT_MAX_AGE = 5.0
"""Seconds after which a steering snapshot is rebuilt on a background thread, even when nothing was
changed through the store (load headroom, reports gone stale); requests meanwhile use the one they have."""
SNAPSHOT_HARD_AGE_FACTOR = 6
"""A snapshot older than this many ``SNAPSHOT_MAX_AGE`` (a worker that sat idle, or background builds
that keep failing) is rebuilt before the request that finds it is answered."""
KEY_FILE = "openflix-url-keys"
"""Where the embedded default keeps its generated URL signing key (working directory, mode 0600)."""


def signing_keys(settings: Settings) -> SigningKeys:
    """The URL signing keys: ``OPENFLIX_URL_KEYS`` (the first key signs), or a generated local key file."""
    text = settings.url_keys.strip()
    source = "OPENFLIX_URL_KEYS"
    if not text:
        path = Path(KEY_FILE)
        source = str(path.resolve())
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"local:{secrets.token_hex(32)}\n")
        text = path.read_text().strip()
    first = text.split(",")[0].strip().partition(":")[0]
    if not first:
        raise ConfigError(f"{source}: expected KEY_ID:HEX_SECRET[,KEY_ID:HEX_SECRET…]")
    try:
        return SigningKeys.from_text(text, active=first)
    except (ConfigError, DataError) as exc:  # said of the setting (or the key file) it came from
        raise ConfigError(f"{source}: {exc}") from None


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
            r.id: Health(state in HEALTHY, load_headroom(r))
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
