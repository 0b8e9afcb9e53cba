"""The Open Connect inventory in the database: write a whole topology, read it back, health, placement, fills.

A topology is written by *sync*: rows are matched by their natural keys
(model and ISP and site names, appliance serials, component names), so ids
stay stable across imports, only what changed is updated, and what the
document no longer names is deleted — all in the caller's transaction.

Change counters in ``cdn_meta`` (``inventory``, ``health``, ``placement``)
let each serving process know when its steering snapshot is stale with one
small read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)

from openflix.cdn.inventory import ApplianceStatus, SiteKind
from openflix.cdn.topology import (
    AnnouncementDoc,
    ApplianceDoc,
    ComponentDoc,
    ISPDoc,
    ModelDoc,
    RegionDoc,
    SiteDoc,
    Topology,
)
from openflix.errors import NotFoundError
from openflix.store.reader import HotReader
from openflix.store.schema import (
    ISP,
    Appliance,
    ApplianceModel,
    CdnMeta,
    Component,
    Fill,
    Holding,
    Manifest,
    RegionPrefix,
    Site,
    SitePrefix,
)

__all__ = [
    "COUNTERS",
    "SEVERITY",
    "ApplianceRow",
    "SyncReport",
    "appliance_row",
    "appliance_rows",
    "apply_all_manifests",
    "apply_manifest",
    "bump",
    "component_states",
    "counters",
    "holdings",
    "latest_manifest",
    "meta",
    "read_counters",
    "read_topology",
    "record_fill",
    "servable",
    "sync_topology",
    "worst_states",
]

COUNTERS = ("inventory", "health", "placement")
MAX_ID = 2**31 - 1
"""Inventory ids are 32-bit INTEGER columns."""
MODEL_FIELDS = ("kind", "storage_tb", "throughput_gbps", "disks", "nics", "psus")


def counters(conn: Connection, keys: Sequence[str] = COUNTERS) -> tuple[int, ...]:
    """The named change counters (0 for one never bumped); default ``(inventory, health, placement)``."""
    return _picked(conn.execute(select(CdnMeta.key, CdnMeta.value).where(CdnMeta.key.in_(keys))).all(), keys)


def read_counters(reader: HotReader, keys: Sequence[str] = COUNTERS) -> tuple[int, ...]:
    """:func:`counters` through the request-path reader (see :mod:`openflix.store.reader`)."""
    return _picked(reader.rows("SELECT key, value FROM cdn_meta", {}), keys)


def _picked(rows: Sequence[Any], keys: Sequence[str]) -> tuple[int, ...]:
    values = dict(rows)
    return tuple(int(values.get(k, 0)) for k in keys)


def bump(conn: Connection, *keys: str) -> None:
    """Increment the named change counters, in the database (two writers at once both count).

    A counter starts at a random value: a database recreated from scratch
    does not repeat the values an earlier one had, so a process that cached
    something under an old value does not take the new database's for it.
    """
    plus_one = cast(cast(CdnMeta.value, BigInteger) + 1, String(200))
    for key in keys:
        if not conn.execute(update(CdnMeta).where(CdnMeta.key == key).values(value=plus_one)).rowcount:
            # the first import creates every counter (sync_topology), so two writers creating one at
            # once is left to the primary key: the second one's transaction fails and writes nothing
            conn.execute(insert(CdnMeta).values(key=key, value=str(secrets.randbits(48))))


def _set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(CdnMeta).where(CdnMeta.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(CdnMeta).values(key=key, value=value))


def meta(conn: Connection, key: str, default: str = "") -> str:
    """A value of ``cdn_meta`` (``default`` when unset)."""
    value = conn.execute(select(CdnMeta.value).where(CdnMeta.key == key)).scalar()
    return default if value is None else str(value)


@dataclass
class SyncReport:
    """What a topology sync changed: ``{"sites": {"added": 2, "updated": 1, "removed": 0}, ...}``."""

    changes: dict[str, dict[str, int]]

    def total(self) -> int:
        """Rows added, updated or removed."""
        return sum(sum(c.values()) for c in self.changes.values())


class _Table:
    """Sync one table's rows, keyed by a natural key, against the desired rows."""

    def __init__(self, conn: Connection, report: SyncReport, name: str) -> None:
        self.conn = conn
        self.counts = report.changes.setdefault(name, {"added": 0, "updated": 0, "removed": 0})

    def sync(
        self,
        table: Any,
        key: Sequence[str],
        desired: Mapping[tuple[Any, ...], dict[str, Any]],
        *,
        remove: bool = True,
    ) -> list[tuple[Any, ...]]:
        """Insert, update and (when ``remove``) delete; else return the keys to delete later."""
        cols = [getattr(table, k) for k in key]
        fields = sorted({f for row in desired.values() for f in row} - set(key))
        have = {
            tuple(r[: len(key)]): dict(zip(fields, r[len(key) :], strict=True))
            for r in self.conn.execute(select(*cols, *(getattr(table, f) for f in fields))).all()
        }
        new = [{**dict(zip(key, k, strict=True)), **row} for k, row in desired.items() if k not in have]
        changed = [
            {**{f"k_{k}": v for k, v in zip(key, kk, strict=True)}, **row}
            for kk, row in desired.items()
            if kk in have and any(have[kk].get(f) != v for f, v in row.items())
        ]
        if new:
            self.conn.execute(insert(table), new)
        if changed:
            stmt = update(table).where(*(c == bindparam(f"k_{k}") for c, k in zip(cols, key, strict=True)))
            self.conn.execute(stmt, changed)
        gone = [k for k in have if k not in desired]
        self.counts["added"] += len(new)
        self.counts["updated"] += len(changed)
        self.counts["removed"] += len(gone)
        if remove:
            _delete_keys(self.conn, table, key, gone)
            return []
        return gone


def _delete_keys(conn: Connection, table: Any, key: Sequence[str], keys: Sequence[tuple[Any, ...]]) -> None:
    """Delete the rows of ``table`` whose ``key`` columns equal one of ``keys`` (500 at a time)."""
    cols = [getattr(table, k) for k in key]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        cond = cols[0].in_([k[0] for k in chunk]) if len(cols) == 1 else tuple_(*cols).in_(chunk)
        conn.execute(delete(table).where(cond))


def _ids(conn: Connection, table: Any, key: str) -> dict[str, int]:
    return {k: i for k, i in conn.execute(select(getattr(table, key), table.id)).all()}


def sync_topology(conn: Connection, topo: Topology) -> SyncReport:
    """Make the stored inventory equal to ``topo`` (validated by :func:`~openflix.cdn.topology.parse`)."""
    report = SyncReport({})
    if meta(conn, "default_region") != topo.default_region:
        _set_meta(conn, "default_region", topo.default_region)
        report.changes["default_region"] = {"added": 0, "updated": 1, "removed": 0}
    later: list[tuple[Any, list[tuple[Any, ...]]]] = []

    def table(name: str) -> _Table:
        return _Table(conn, report, name)

    later.append(
        (ApplianceModel, table("appliance_models").sync(
            ApplianceModel, ["name"],
            {(m.name,): {f: getattr(m, f) for f in MODEL_FIELDS}
             for m in topo.models},
            remove=False,
        ))
    )  # fmt: skip
    later.append(
        (ISP, table("isps").sync(ISP, ["name"], {(i.name,): {"asn": i.asn} for i in topo.isps}, remove=False))
    )
    isp_id = _ids(conn, ISP, "name")
    site_fields = ("kind", "region", "country", "latitude", "longitude", "timezone", "fill_window")
    later.append(
        (Site, table("sites").sync(
            Site, ["name"],
            {(s.name,): {**{f: str(getattr(s, f)) if f == "kind" else getattr(s, f) for f in site_fields},
                         "isp_id": isp_id.get(s.isp) if s.isp else None}
             for s in topo.sites},
            remove=False,
        ))
    )  # fmt: skip
    site_id = _ids(conn, Site, "name")
    model_id = _ids(conn, ApplianceModel, "name")
    later.append(
        (Appliance, table("appliances").sync(
            Appliance, ["serial"],
            {(a.serial,): {"hostname": a.hostname, "site_id": site_id[a.site], "model_id": model_id[a.model],
                           "status": str(a.status)}
             for a in topo.appliances},
            remove=False,
        ))
    )  # fmt: skip
    appliance_id = _ids(conn, Appliance, "serial")
    table("components").sync(
        Component,
        ["appliance_id", "name"],
        {
            (appliance_id[a.serial], c.name): {"kind": c.kind, "status": c.status}
            for a in topo.appliances
            for c in a.components
        },
    )
    table("prefixes").sync(
        SitePrefix,
        ["site_id", "prefix"],
        {(site_id[a.site], p): {"isp_id": isp_id[a.isp]} for a in topo.announcements for p in a.prefixes},
    )
    table("region_prefixes").sync(
        RegionPrefix, ["prefix"], {(p,): {"region": r.name} for r in topo.regions for p in r.prefixes}
    )
    for tbl, gone in reversed(later):  # appliances, then sites, ISPs and models: children first
        _delete_keys(conn, tbl, ["serial" if tbl is Appliance else "name"], gone)
    if report.total():  # an import that changes nothing rebuilds no steering anywhere
        bump(conn, "inventory", "health", "placement", "components")  # the first import creates them all
    return report


def read_topology(conn: Connection) -> Topology:
    """The stored inventory as a topology document (component states as last reported)."""
    models = conn.execute(select(ApplianceModel).order_by(ApplianceModel.id)).all()
    isps = conn.execute(select(ISP).order_by(ISP.id)).all()
    sites = conn.execute(select(Site).order_by(Site.id)).all()
    isp_name = {i.id: i.name for i in isps}
    site_name = {s.id: s.name for s in sites}
    model_name = {m.id: m.name for m in models}
    announced: dict[tuple[str, str], list[str]] = {}
    for site, prefix, isp in conn.execute(
        select(SitePrefix.site_id, SitePrefix.prefix, SitePrefix.isp_id).order_by(
            SitePrefix.site_id, SitePrefix.prefix
        )
    ).all():
        announced.setdefault((isp_name[isp], site_name[site]), []).append(prefix)
    regions: dict[str, list[str]] = {}
    for prefix, region in conn.execute(
        select(RegionPrefix.prefix, RegionPrefix.region).order_by(RegionPrefix.prefix)
    ):
        regions.setdefault(region, []).append(prefix)
    components: dict[int, list[ComponentDoc]] = {}
    for aid, name, kind, status in conn.execute(
        select(Component.appliance_id, Component.name, Component.kind, Component.status)
    ).all():
        components.setdefault(aid, []).append(ComponentDoc(name, kind, status))
    for parts in components.values():
        parts.sort(key=_component_order)
    appliances = conn.execute(select(Appliance).order_by(Appliance.id)).all()
    return Topology(
        default_region=meta(conn, "default_region"),
        regions=tuple(RegionDoc(r, tuple(sorted(p))) for r, p in sorted(regions.items())),
        models=tuple(
            ModelDoc(m.name, m.kind, m.storage_tb, m.throughput_gbps, m.disks, m.nics, m.psus) for m in models
        ),
        isps=tuple(ISPDoc(i.name, i.asn) for i in isps),
        sites=tuple(
            SiteDoc(
                s.name,
                SiteKind(s.kind),
                s.region,
                s.country,
                s.latitude,
                s.longitude,
                s.timezone,
                s.fill_window,
                isp_name.get(s.isp_id) if s.isp_id is not None else None,
            )
            for s in sites
        ),
        announcements=tuple(
            AnnouncementDoc(i, s, tuple(sorted(p))) for (i, s), p in sorted(announced.items())
        ),
        appliances=tuple(
            ApplianceDoc(
                a.serial,
                site_name[a.site_id],
                model_name[a.model_id],
                a.hostname,
                ApplianceStatus(a.status),
                tuple(components.get(a.id, ())),
            )
            for a in appliances
        ),
    )


def _component_order(c: ComponentDoc) -> tuple[int, int, str]:
    kinds = {"disk": 0, "nic": 1, "psu": 2}
    digits = c.name.lstrip("abcdefghijklmnopqrstuvwxyz")
    return (kinds.get(c.kind, 9), int(digits) if digits.isdigit() else 0, c.name)


@dataclass(frozen=True)
class ApplianceRow:
    """An appliance as steering and fill see it: where, how big, and its latest health report.

    ``storage_tb``/``throughput_gbps`` from its model; ``worst`` is its worst
    component's state (``ok``, ``degraded``, ``failed``); ``reported_at`` Unix
    seconds or ``None`` when it never reported.
    """

    id: int
    serial: str
    hostname: str
    site_id: int
    site: str
    status: str
    storage_tb: float
    throughput_gbps: float
    reported_at: int | None
    load: float | None
    served_gbps: float | None
    worst: str


SEVERITY = {"ok": 0, "degraded": 1, "failed": 2}
"""Component states, from best to worst."""


def worst_states(conn: Connection, appliance_ids: Iterable[int] | None = None) -> dict[int, str]:
    """Per appliance with components, its worst component state (grouped in the database)."""
    severity = func.max(case(SEVERITY, value=Component.status, else_=0))
    q = select(Component.appliance_id, severity).group_by(Component.appliance_id)
    if appliance_ids is not None:
        q = q.where(Component.appliance_id.in_(list(appliance_ids)))
    name = {level: state for state, level in SEVERITY.items()}
    return {int(aid): name[int(level)] for aid, level in conn.execute(q).all()}


def component_states(conn: Connection, appliance_id: int) -> dict[str, str]:
    """An appliance's components: name -> state."""
    q = select(Component.name, Component.status).where(Component.appliance_id == appliance_id)
    return {name: status for name, status in conn.execute(q).all()}


def appliance_row(conn: Connection, appliance_id: int) -> ApplianceRow | None:
    """One appliance with its model's size and its health (``None`` when there is none)."""
    if not 0 <= appliance_id <= MAX_ID:  # the ids are 32-bit INTEGER: PostgreSQL refuses larger ones
        return None
    rows = appliance_rows(conn, appliance_id=appliance_id)
    return rows[0] if rows else None


def appliance_rows(
    conn: Connection, *, site_id: int | None = None, appliance_id: int | None = None
) -> list[ApplianceRow]:
    """Every appliance (or a site's, or one), in id order, with its model's size and its health."""
    q = (
        select(
            *Appliance.__table__.columns,
            Site.name.label("site"),
            ApplianceModel.storage_tb,
            ApplianceModel.throughput_gbps,
        )
        .join(Site, Site.id == Appliance.site_id)
        .join(ApplianceModel, ApplianceModel.id == Appliance.model_id)
        .order_by(Appliance.id)
    )
    if site_id is not None:
        q = q.where(Appliance.site_id == site_id)
    if appliance_id is not None:
        q = q.where(Appliance.id == appliance_id)
    rows = conn.execute(q).all()
    worst = worst_states(conn, None if site_id is None and appliance_id is None else [r.id for r in rows])
    return [
        ApplianceRow(
            a.id, a.serial, a.hostname, a.site_id, a.site, a.status, a.storage_tb, a.throughput_gbps,
            a.reported_at, a.load, a.served_gbps, worst.get(a.id, "ok"),
        )
        for a in rows
    ]  # fmt: skip


def encode_titles(titles: npt.ArrayLike) -> bytes:
    """Title ids as little-endian int64 bytes (what ``cdn_holdings.titles`` stores)."""
    return np.asarray(titles, dtype="<i8").tobytes()


def decode_titles(blob: bytes) -> npt.NDArray[np.int64]:
    """The inverse of :func:`encode_titles`."""
    return np.frombuffer(blob, dtype="<i8").astype(np.int64)


def holdings(
    conn: Connection, appliance_ids: Iterable[int] | None = None
) -> dict[int, npt.NDArray[np.int64]]:
    """What each appliance stores: appliance id -> sorted title ids."""
    q = select(Holding.appliance_id, Holding.titles)
    if appliance_ids is not None:
        q = q.where(Holding.appliance_id.in_(list(appliance_ids)))
    return {aid: decode_titles(blob) for aid, blob in conn.execute(q).all()}


def servable(
    conn: Connection, appliance_ids: Iterable[int] | None = None
) -> dict[int, npt.NDArray[np.int64]]:
    """What each appliance (or each of ``appliance_ids``) can serve now: its holdings less the titles
    added by manifests it has not applied yet (appliance id -> sorted title ids)."""
    ids = None if appliance_ids is None else list(appliance_ids)
    held = holdings(conn, ids)
    pending: dict[int, list[int]] = {}
    q = select(Manifest.appliance_id, Manifest.add).where(Manifest.applied_at.is_(None))
    if ids is not None:
        q = q.where(Manifest.appliance_id.in_(ids))
    for appliance_id, add in conn.execute(q):
        pending.setdefault(appliance_id, []).extend(add)
    for appliance_id, titles in pending.items():
        if appliance_id in held:
            held[appliance_id] = np.setdiff1d(held[appliance_id], np.asarray(titles, dtype=np.int64))
    return held


def apply_manifest(conn: Connection, appliance_id: int, fill_id: int, now: int) -> tuple[int, int]:
    """Mark the appliance's manifest of ``fill_id`` and every earlier one as applied.

    Returns ``(manifests marked now, manifests still pending)``;
    :class:`NotFoundError` when the appliance has no manifest of that fill.
    """
    known = conn.execute(
        select(Manifest.fill_id).where(Manifest.appliance_id == appliance_id, Manifest.fill_id == fill_id)
    ).first()
    if known is None:
        raise NotFoundError(f"appliance {appliance_id} has no manifest of fill {fill_id}")
    marked = _mark_applied(
        conn,
        (Manifest.appliance_id == appliance_id)
        & (Manifest.fill_id <= fill_id)
        & Manifest.applied_at.is_(None),
        now,
    )
    pending = conn.scalar(
        select(func.count()).where(Manifest.appliance_id == appliance_id, Manifest.applied_at.is_(None))
    )
    return marked, int(pending or 0)


def apply_all_manifests(conn: Connection, now: int) -> int:
    """Mark every manifest not applied yet as applied (a lab fleet); returns how many."""
    return _mark_applied(conn, Manifest.applied_at.is_(None), now)


def _mark_applied(conn: Connection, which: Any, now: int) -> int:
    """Mark the manifests ``which`` selects as applied at ``now``, stamped with a new ``placement``."""
    if not conn.scalar(select(func.count()).select_from(Manifest).where(which)):
        return 0
    rev = _next_placement(conn)
    return int(conn.execute(update(Manifest).where(which).values(applied_at=now, placement_rev=rev)).rowcount)


def _next_placement(conn: Connection) -> int:
    """Bump ``placement`` and return its new value, to stamp the manifests this transaction changes.

    The counter's row stays locked until the transaction ends, so stamps
    become visible in counter order: a reader that saw the counter at ``v``
    finds every change up to ``v`` with :func:`placement_changes`.
    """
    bump(conn, "placement")
    return counters(conn, ("placement",))[0]


def placement_changes(conn: Connection, since: int, until: int) -> list[int]:
    """Appliances whose servable titles changed after the ``placement`` counter was ``since`` and up to
    ``until`` (a fill or an applied manifest), sorted."""
    return list(
        conn.scalars(
            select(Manifest.appliance_id)
            .where(Manifest.placement_rev > since, Manifest.placement_rev <= until)
            .distinct()
            .order_by(Manifest.appliance_id)
        )
    )


def record_fill(
    conn: Connection,
    *,
    site_id: int,
    day: str,
    source: str,
    plan: Mapping[int, npt.NDArray[np.int64]],
    manifests: Sequence[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    now: int,
) -> int:
    """Store a site's fill: the new holdings, one manifest per appliance; returns the fill id.

    Every appliance of ``plan`` needs its manifest (empty when nothing changes): the manifests are
    how serving processes learn which appliances to read again.
    """
    unlisted = set(plan) - {a for a, _, _ in manifests}
    if unlisted:
        raise ValueError(f"record_fill: appliances {sorted(unlisted)} are planned without a manifest")
    titles = int(np.unique(np.concatenate([*plan.values(), np.empty(0, np.int64)])).size)
    rev = _next_placement(conn)
    fill_id = conn.execute(
        insert(Fill).values(
            site_id=site_id,
            day=day,
            source=source,
            titles=titles,
            copies=int(sum(len(v) for v in plan.values())),
            added=int(sum(len(a) for _, a, _ in manifests)),
            deleted=int(sum(len(d) for _, _, d in manifests)),
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    if manifests:
        conn.execute(
            insert(Manifest),
            [
                {
                    "fill_id": fill_id,
                    "appliance_id": a,
                    "add": add.tolist(),
                    "delete": d.tolist(),
                    "placement_rev": rev,
                }
                for a, add, d in manifests
            ],
        )
    conn.execute(delete(Holding).where(Holding.appliance_id.in_(list(plan))))
    if plan:
        conn.execute(
            insert(Holding),
            [{"appliance_id": a, "titles": encode_titles(t), "updated_at": now} for a, t in plan.items()],
        )
    return int(fill_id)  # every appliance of the plan has a manifest, stamped


def latest_manifest(conn: Connection, appliance_id: int) -> dict[str, Any] | None:
    """What the appliance must do to reach its newest plan (``None``: never filled).

    With manifests not applied yet, their adds and deletes are composed in
    fill order, so an appliance that missed a fill still gets everything it
    lacks: ``fill_id`` is the newest and ``since`` the oldest of them.  With
    none pending, the newest manifest (applied).  Day and source are the
    newest fill's.
    """
    rows = conn.execute(
        select(Manifest.fill_id, Manifest.add, Manifest.delete, Manifest.applied_at, Fill.day, Fill.source)
        .join(Fill, Fill.id == Manifest.fill_id)
        .where(Manifest.appliance_id == appliance_id)
        .order_by(Manifest.fill_id.desc())
    ).all()
    if not rows:
        return None
    pending = [r for r in reversed(rows) if r.applied_at is None]
    newest = rows[0]
    add, drop = set(newest.add), set(newest.delete)
    if pending:
        add, drop = set(), set()
        for r in pending:
            add = (add - set(r.delete)) | set(r.add)
            drop = (drop - set(r.add)) | set(r.delete)
    return {
        "fill_id": newest.fill_id,
        "since": pending[0].fill_id if pending else newest.fill_id,
        "add": sorted(add),
        "delete": sorted(drop),
        "applied_at": newest.applied_at,
        "day": newest.day,
        "source": newest.source,
    }
