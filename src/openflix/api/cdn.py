"""Open Connect: the inventory (CRUD, whole-topology import and export), health reports, steering, fill.

Reads need an operator token, inventory changes an admin token, health
reports an operator token (the appliances' own); steering answers any
valid token, since the playback service asks on behalf of members.
"""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint
from flask import Response, request

from openflix.api import cdn_schemas as c
from openflix.api.auth import auth, require
from openflix.api.context import platform
from openflix.cdn.topology import dump, parse_text
from openflix.errors import DataError
from openflix.services import openconnect as oc
from openflix.store.tokens import Role

bp = APIBlueprint("cdn", __name__, tag="Open Connect", url_prefix="/cdn")
UNKNOWN = {404: "Unknown id"}
CHANGE = {
    404: "Unknown id",
    409: "Exists already, or still in use",
    422: "The inventory would be inconsistent",
}


def _page(items: list[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    limit, offset = query["limit"], query["offset"]
    return {"items": items[offset : offset + limit], "total": len(items), "limit": limit, "offset": offset}


def _stale() -> float:
    return platform().settings.health_stale_s


# --- topology ----------------------------------------------------------------------------------------


TOPOLOGY_OUT: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {
        "description": "The whole topology document",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}


@bp.get("/topology")
@bp.auth_required(auth)
@bp.input(c.TopologyQuery, location="query", arg_name="query")
@bp.doc(responses=TOPOLOGY_OUT)
def export(query: dict[str, Any]) -> Response:
    """The whole inventory as one topology document (operator)."""
    require(Role.OPERATOR)
    fmt = query["format"]
    text = dump(oc.export_topology(platform().engine), fmt)
    return Response(text, mimetype="application/json" if fmt == "json" else "application/yaml")


@bp.put("/topology")
@bp.auth_required(auth)
@bp.output(c.SyncOut)
@bp.doc(
    summary="Replace the whole topology",
    responses={422: "The document is invalid: every problem listed, nothing written"},
)
def replace() -> dict[str, Any]:
    """Make the inventory equal to a topology document (JSON or YAML body): validated, all or nothing (admin).

    Items are matched by name (appliances by serial), so ids stay stable;
    what the document does not name is removed.
    """
    require(Role.ADMIN)
    text = request.get_data(as_text=True)
    if not text.strip():
        raise DataError("body: expected a topology document (JSON or YAML), got an empty body")
    report = oc.import_topology(platform().engine, parse_text(text, "body"))
    return {"changes": report.changes}


# --- CRUD ----------------------------------------------------------------------------------------------


def _crud(kind: str, noun: str, schema_in: Any, schema_out: Any, schema_page: Any, query_schema: Any) -> None:
    """Register list, create, get, patch and delete routes for one kind of inventory item."""
    base = f"/{kind}" if kind != "models" else "/appliance-models"

    @bp.get(base, endpoint=f"{kind}_list")
    @bp.auth_required(auth)
    # a misspelt filter is a 422 naming it, not a silently unfiltered list
    @bp.input(query_schema, location="query", arg_name="query")
    @bp.output(schema_page)
    @bp.doc(
        summary=f"List {noun}s",
        description=f"{noun.capitalize()}s in id order, filtered by equality on every field given; "
        "an unknown query parameter is refused (operator).",
    )
    def list_(query: dict[str, Any]) -> dict[str, Any]:
        require(Role.OPERATOR)
        items = oc.list_items(platform().engine, kind, stale_s=_stale())
        filters = {k: v for k, v in query.items() if k not in ("limit", "offset")}
        if "region" in filters and kind == "appliances":
            sites = {
                s["name"]
                for s in oc.list_items(platform().engine, "sites")
                if s["region"] == filters["region"]
            }
            items = [i for i in items if i["site"] in sites]
            del filters["region"]
        items = [i for i in items if all(i.get(k) == v for k, v in filters.items())]
        return _page(items, query)

    @bp.post(base, endpoint=f"{kind}_create")
    @bp.auth_required(auth)
    @bp.input(schema_in, arg_name="body")
    @bp.output(schema_out, status_code=201)
    @bp.doc(summary=f"Add a {noun}", description=f"Add a {noun}; the inventory is validated whole (admin).",
            responses=CHANGE)  # fmt: skip
    def create(body: dict[str, Any]) -> dict[str, Any]:
        require(Role.ADMIN)
        item_id = oc.create_item(platform().engine, kind, body)
        return oc.get_item(platform().engine, kind, item_id, stale_s=_stale())

    @bp.get(f"{base}/<int:item_id>", endpoint=f"{kind}_get")
    @bp.auth_required(auth)
    @bp.output(schema_out)
    @bp.doc(summary=f"Get a {noun}", description=f"One {noun} (operator).", responses=UNKNOWN)
    def get(item_id: int) -> dict[str, Any]:
        require(Role.OPERATOR)
        return oc.get_item(platform().engine, kind, item_id, stale_s=_stale())

    @bp.patch(f"{base}/<int:item_id>", endpoint=f"{kind}_patch")
    @bp.auth_required(auth)
    @bp.input(schema_in(partial=True), arg_name="body")
    @bp.output(schema_out)
    @bp.doc(summary=f"Change a {noun}", description=f"Change fields of a {noun} (admin).", responses=CHANGE)
    def patch(item_id: int, body: dict[str, Any]) -> dict[str, Any]:
        require(Role.ADMIN)
        oc.update_item(platform().engine, kind, item_id, body)
        return oc.get_item(platform().engine, kind, item_id, stale_s=_stale())

    @bp.delete(f"{base}/<int:item_id>", endpoint=f"{kind}_delete")
    @bp.auth_required(auth)
    @bp.output({}, status_code=204)
    @bp.doc(summary=f"Remove a {noun}", description=f"Remove a {noun} nothing refers to (admin).",
            responses=CHANGE)  # fmt: skip
    def remove(item_id: int) -> tuple[str, int]:
        require(Role.ADMIN)
        oc.delete_item(platform().engine, kind, item_id)
        return "", 204


_crud("sites", "site", c.SiteIn, c.SiteOut, c.SitePage, c.SiteQuery)
_crud("isps", "ISP", c.ISPIn, c.ISPOut, c.ISPPage, c.ISPQuery)
_crud("models", "appliance model", c.ModelIn, c.ModelOut, c.ModelPage, c.ModelQuery)
_crud("appliances", "appliance", c.ApplianceIn, c.ApplianceOut, c.AppliancePage, c.ApplianceQuery)


# --- components ------------------------------------------------------------------------------------


@bp.get("/components")
@bp.auth_required(auth)
@bp.input(c.ComponentQuery, location="query", arg_name="query")
@bp.output(c.ComponentPage)
def components_list(query: dict[str, Any]) -> dict[str, Any]:
    """Components of the whole fleet, filtered by appliance, site, kind and status (operator).

    E.g. ``?kind=disk&status=failed``: every failed disk to replace.
    """
    require(Role.OPERATOR)
    filters = {k: v for k, v in query.items() if k not in ("limit", "offset", "appliance")}
    items = oc.list_components(platform().engine, appliance_id=query.get("appliance"), **filters)
    return _page(items, query)


@bp.get("/appliances/<int:appliance_id>/components")
@bp.auth_required(auth)
@bp.input(c.ApplianceComponentQuery, location="query", arg_name="query")
@bp.output(c.ComponentPage)
@bp.doc(responses=UNKNOWN)
def appliance_components(appliance_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """One appliance's components, filtered by kind and status (operator)."""
    require(Role.OPERATOR)
    filters = {k: v for k, v in query.items() if k not in ("limit", "offset")}
    return _page(oc.components_of(platform().engine, appliance_id, **filters), query)


@bp.post("/appliances/<int:appliance_id>/components")
@bp.auth_required(auth)
@bp.input(c.NewComponent, arg_name="body")
@bp.output(c.ComponentOut, status_code=201)
@bp.doc(responses=CHANGE)
def component_create(appliance_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Add a component to an appliance (admin)."""
    require(Role.ADMIN)
    oc.create_component(platform().engine, appliance_id, body)
    return oc.get_component(platform().engine, appliance_id, body["name"])


@bp.get("/appliances/<int:appliance_id>/components/<name>")
@bp.auth_required(auth)
@bp.output(c.ComponentOut)
@bp.doc(responses=UNKNOWN)
def component_get(appliance_id: int, name: str) -> dict[str, Any]:
    """One component of an appliance (operator)."""
    require(Role.OPERATOR)
    return oc.get_component(platform().engine, appliance_id, name)


@bp.patch("/appliances/<int:appliance_id>/components/<name>")
@bp.auth_required(auth)
@bp.input(c.ComponentPatch, arg_name="body")
@bp.output(c.ComponentOut)
@bp.doc(responses=CHANGE)
def component_patch(appliance_id: int, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Change a component's kind or status, e.g. ``ok`` once a failed disk is replaced (admin)."""
    require(Role.ADMIN)
    oc.update_component(platform().engine, appliance_id, name, body)
    return oc.get_component(platform().engine, appliance_id, name)


@bp.delete("/appliances/<int:appliance_id>/components/<name>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(responses=CHANGE)
def component_delete(appliance_id: int, name: str) -> tuple[str, int]:
    """Remove a component from an appliance (admin)."""
    require(Role.ADMIN)
    oc.delete_component(platform().engine, appliance_id, name)
    return "", 204


@bp.post("/isps/<int:isp_id>/prefixes")
@bp.auth_required(auth)
@bp.input(c.PrefixesIn, arg_name="body")
@bp.output(c.PrefixesOut)
@bp.doc(responses=CHANGE)
def announce(isp_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Record prefixes an ISP announces to one of its embedded sites (admin)."""
    return _announcement(isp_id, body, withdraw=False)


@bp.delete("/isps/<int:isp_id>/prefixes")
@bp.auth_required(auth)
@bp.input(c.PrefixesIn, arg_name="body")
@bp.output(c.PrefixesOut)
@bp.doc(responses=CHANGE)
def withdraw(isp_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Withdraw prefixes an ISP announced to one of its sites (admin)."""
    return _announcement(isp_id, body, withdraw=True)


def _announcement(isp_id: int, body: dict[str, Any], *, withdraw: bool) -> dict[str, Any]:
    require(Role.ADMIN)
    engine = platform().engine
    prefixes = oc.announce(engine, isp_id, body["site"], body["prefixes"], withdraw=withdraw)
    return {"isp": oc.get_item(engine, "isps", isp_id)["name"], "site": body["site"], "prefixes": prefixes}


# --- health, steering, fill --------------------------------------------------------------------------


@bp.post("/appliances/<int:appliance_id>/health")
@bp.auth_required(auth)
@bp.input(c.HealthIn, arg_name="body")
@bp.output(c.HealthOut)
@bp.doc(responses={404: "Unknown appliance", 422: "A component the appliance does not have"})
def report(appliance_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """An appliance reports its load, served Gbps and component states (operator).

    The appliance's health is its worst component's; a report older than
    ``OPENFLIX_HEALTH_STALE_S`` counts as unknown and is not steered to.
    """
    require(Role.OPERATOR)
    view = oc.report_health(
        platform().engine,
        appliance_id,
        load=body["load"],
        served_gbps=body["served_gbps"],
        components=body["components"],
        stale_s=_stale(),
    )
    return view.__dict__


@bp.get("/appliances/<int:appliance_id>/health")
@bp.auth_required(auth)
@bp.output(c.HealthOut)
@bp.doc(responses={404: "Unknown appliance"})
def health(appliance_id: int) -> dict[str, Any]:
    """An appliance's health: state, load, headroom and each component (operator)."""
    require(Role.OPERATOR)
    return oc.health_view(platform().engine, appliance_id, stale_s=_stale()).__dict__


@bp.get("/appliances/<int:appliance_id>/manifest")
@bp.auth_required(auth)
@bp.output(c.ManifestOut)
@bp.doc(responses={404: "Unknown appliance"})
def manifest(appliance_id: int) -> dict[str, Any]:
    """The appliance's newest fill manifest: title ids to fetch and to delete, and where from (operator)."""
    require(Role.OPERATOR)
    return oc.manifest(platform().engine, appliance_id)


@bp.post("/appliances/<int:appliance_id>/manifest")
@bp.auth_required(auth)
@bp.input(c.ManifestAppliedIn, arg_name="body")
@bp.output(c.ManifestAppliedOut)
@bp.doc(responses={404: "Unknown appliance, or no manifest of that fill for it"})
def manifest_applied(appliance_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """The appliance applied its manifest of ``fill_id`` (and every earlier one): steering sends the
    titles it added there from now on (operator)."""
    require(Role.OPERATOR)
    return oc.apply_manifest(platform().engine, appliance_id, body["fill_id"])


@bp.get("/steer")
@bp.auth_required(auth)
@bp.input(c.SteerQuery, location="query", arg_name="query")
@bp.output(c.SteerOut)
@bp.doc(responses={404: "Unknown title", 422: "Malformed IP address"})
def steer(query: dict[str, Any]) -> Response:
    """Where a client plays a title: up to ``n`` signed URLs, best first; none: the origin's URL.

    Embedded appliances of the client's ISP first, then exchange sites of its
    region, then other regions; only active, healthy appliances that hold
    the title, ranked by load headroom.
    """
    result = platform().steering.steer(query["ip"], query["title"], query["n"])
    d = result.decision
    body = {
        "ip": d.ip,
        "title": d.title_id,
        "region": d.region,
        "isp": d.isp,
        "origin": int(d.origin),
        "origin_url": result.origin_url,
        "expires": result.expires,
        "choices": [
            {"appliance_id": ch.appliance_id, "hostname": ch.hostname, "tier": str(ch.tier), "url": url}
            for ch, url in zip(d.choices, result.urls, strict=True)
        ],
    }
    # Encoded here, not through SteerOut (which documents it): every playback asks, and the schema's
    # dump of the nested choices cost a fifth of the request.
    return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")
