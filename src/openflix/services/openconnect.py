"""Open Connect use cases: the inventory, health reports, steering with signed URLs.

Every change to the inventory — a whole-topology import or one site, ISP,
model or appliance through the API — goes through the same path: the stored
topology is read, changed, validated *completely* by
:func:`~openflix.cdn.topology.parse` and synced, in one transaction.  So
nothing inconsistent is ever written, and a refused change writes nothing.

Steering on it runs in :mod:`openflix.services.steering`.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from openflix.cdn.prefixes import normalize_prefix
from openflix.cdn.topology import DocPath, ModelDoc, Topology, parse
from openflix.errors import ConflictError, DataError, NotFoundError
from openflix.store import cdn as store
from openflix.store.db import translating
from openflix.store.schema import ISP, ApplianceModel, Component
from openflix.store.schema import Appliance as ApplianceTable
from openflix.store.schema import Site as SiteTable

__all__ = [
    "HEALTHY",
    "HealthView",
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
    "load_headroom",
    "report_fleet",
    "report_health",
    "update_component",
]

log = logging.getLogger("openflix.cdn")

HEALTHY = ("ok", "degraded")
"""Worst-component states steering still sends playbacks to (a degraded disk still serves)."""
COPY_MAX_AGE = 60.0
"""Seconds a process keeps its copy of the placement or of the inventory document at most, even when
the change counters say nothing changed (a change made around the store is seen within this; the
placement is then read again in the background, so within this plus that read)."""


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


def load_headroom(row: store.ApplianceRow) -> float:
    """Share of the appliance's capacity free, ``0..1``: one minus the larger of its reported load and
    its served throughput over its model's."""
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
        load_headroom(row),
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
        appliance_id, after.worst, int(now), load, served_gbps, load_headroom(after), {**have, **components}
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
            item["headroom"] = load_headroom(row)
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
                    f"{kind.noun} {name!r} is still named in {list_key}: {len(users)} of them "
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
