"""The Open Connect API on both backends: topology, CRUD, health, steering with signed URLs, fill."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import func, insert, select

from openflix.api.cdn_schemas import SteerOut
from openflix.cdn.signing import SignatureError, verify_url
from openflix.errors import NotFoundError
from openflix.services.fill import fill_order, fill_site, fill_sites
from openflix.services.openconnect import apply_pending, report_health
from openflix.store.cdn import appliance_rows, holdings
from openflix.store.schema import Fill
from tests.api.conftest import Served

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "topology.yaml"


def _delete(served: Served, path: str, token: str, **kw: Any) -> Any:
    return served.client.delete(path, headers={"Authorization": f"Bearer {token}"}, **kw)


def _patch(served: Served, path: str, token: str, **kw: Any) -> Any:
    return served.client.patch(path, headers={"Authorization": f"Bearer {token}"}, **kw)


def _report_all(served: Served) -> None:
    engine = served.platform.engine
    with engine.connect() as conn:
        rows = appliance_rows(conn)
    for r in rows:
        report_health(engine, r.id, load=0.3, served_gbps=1.0, components={}, stale_s=300)


@pytest.fixture(scope="module")
def cdn(served: Served) -> Served:
    """The sample topology imported, every appliance reporting, every site filled."""
    r = served.put("/cdn/topology", served.admin, data=SAMPLE.read_text(), content_type="application/yaml")
    assert r.status_code == 200, r.json
    _report_all(served)
    engine = served.platform.engine
    for site in fill_order(engine):
        fill_site(engine, site, title_gb=100.0, stale_s=300)
    apply_pending(engine)  # the appliances fetched what their manifests added
    return served


def _embedded_ip(served: Served) -> tuple[str, str]:
    """A client address of the first ISP, and that ISP's name."""
    topo = yaml.safe_load(SAMPLE.read_text())
    first = topo["announcements"][0]
    return first["prefixes"][1].split("/")[0].rsplit(".", 1)[0] + ".77", first["isp"]


def test_the_topology_round_trips_through_import_and_export(cdn: Served) -> None:
    r = cdn.get("/cdn/topology?format=yaml", cdn.operator)
    assert r.status_code == 200 and r.mimetype == "application/yaml"
    again = cdn.put("/cdn/topology", cdn.admin, data=r.data, content_type="application/yaml")
    assert again.status_code == 200
    changes = again.json["changes"]
    assert all(c["added"] == c["removed"] == 0 for c in changes.values()), changes
    assert changes["components"]["updated"] == 0


def test_an_invalid_topology_is_refused_whole_and_writes_nothing(cdn: Served) -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["sites"].append({"name": "new-site", "kind": "exchange", "region": "us"})
    doc["appliances"][0]["site"] = "nowhere"
    before = cdn.get("/cdn/sites?limit=200", cdn.operator).json["total"]
    r = cdn.put("/cdn/topology", cdn.admin, data=yaml.safe_dump(doc), content_type="application/yaml")
    assert r.status_code == 422
    assert r.mimetype == "application/problem+json"
    assert "appliances[0].site: unknown site 'nowhere'" in r.json["detail"]
    assert cdn.get("/cdn/sites?limit=200", cdn.operator).json["total"] == before
    r = cdn.put("/cdn/topology", cdn.admin, data=b"sites: [", content_type="application/yaml")
    assert r.status_code == 422 and "body:" in r.json["detail"]
    # a document that leaves sections out would remove everything they held: refused, not applied
    r = cdn.put("/cdn/topology", cdn.admin, json={})
    assert r.status_code == 422 and "sites: expected a list (write [] for none)" in r.json["detail"]
    r = cdn.put(
        "/cdn/topology", cdn.admin, data=SAMPLE.read_text() + "sites: []\n", content_type="application/yaml"
    )
    assert r.status_code == 422 and "key 'sites' appears twice" in r.json["detail"]
    deep = "[" * 100_000 + "]" * 100_000  # the JSON parser's recursion: a 500 before
    r = cdn.put("/cdn/topology", cdn.admin, data=deep, content_type="application/json")
    assert r.status_code == 422 and "body: not valid JSON or YAML" in r.json["detail"]
    assert cdn.get("/cdn/sites?limit=200", cdn.operator).json["total"] == before


def test_roles_reads_need_an_operator_and_changes_an_admin(cdn: Served) -> None:
    assert cdn.get("/cdn/sites", cdn.member).status_code == 403
    assert cdn.get("/cdn/sites").status_code == 401
    body = {"name": "ix-new", "kind": "exchange", "region": "us"}
    assert cdn.post("/cdn/sites", cdn.operator, json=body).status_code == 403


def test_sites_filter_and_page(cdn: Served) -> None:
    r = cdn.get("/cdn/sites?kind=exchange&region=us&limit=2", cdn.operator).json
    assert r["total"] >= 2 and len(r["items"]) == 2
    assert all(s["kind"] == "exchange" and s["region"] == "us" for s in r["items"])
    second = cdn.get("/cdn/sites?kind=exchange&region=us&limit=2&offset=2", cdn.operator).json
    assert {s["id"] for s in second["items"]}.isdisjoint({s["id"] for s in r["items"]})
    apps = cdn.get("/cdn/appliances?region=gb&status=active&limit=200", cdn.operator).json
    assert apps["total"] > 0 and all(a["health"] == "ok" for a in apps["items"])


def test_every_list_filters_on_its_fields_and_refuses_an_unknown_one(cdn: Served) -> None:
    isps = cdn.get("/cdn/isps?limit=200", cdn.operator).json["items"]
    one = isps[1]
    for query in (f"name={one['name']}", f"asn={one['asn']}"):
        assert [i["id"] for i in cdn.get(f"/cdn/isps?{query}", cdn.operator).json["items"]] == [one["id"]]
    models = cdn.get("/cdn/appliance-models?limit=200", cdn.operator).json["items"]
    flash = [m["id"] for m in models if m["kind"] == "flash"]
    assert 0 < len(flash) < len(models)
    assert [m["id"] for m in cdn.get("/cdn/appliance-models?kind=flash", cdn.operator).json["items"]] == flash
    model = models[0]["name"]
    apps = cdn.get(f"/cdn/appliances?model={model}&limit=200", cdn.operator).json
    assert 0 < apps["total"] < 222 and all(a["model"] == model for a in apps["items"])
    for path in ("/cdn/sites?color=red", "/cdn/isps?nme=x", "/cdn/appliance-models?kind=flash&size=1",
                 "/cdn/appliances?modell=x"):  # fmt: skip
        r = cdn.get(path, cdn.operator)
        assert r.status_code == 422 and r.mimetype == "application/problem+json", path
        assert path.split("?")[1].split("&")[-1].split("=")[0] in r.json["detail"], r.json


def test_crud_of_an_isp_site_and_appliance(cdn: Served) -> None:
    isp = cdn.post("/cdn/isps", cdn.admin, json={"name": "Testnet", "asn": 65000})
    assert isp.status_code == 201, isp.json
    site = cdn.post(
        "/cdn/sites",
        cdn.admin,
        json={
            "name": "testnet-one",
            "kind": "embedded",
            "region": "us",
            "isp": "Testnet",
            "timezone": "America/Denver",
        },
    )
    assert site.status_code == 201, site.json
    assert cdn.post("/cdn/isps", cdn.admin, json={"name": "Testnet", "asn": 65001}).status_code == 409
    r = cdn.post(
        f"/cdn/isps/{isp.json['id']}/prefixes",
        cdn.admin,
        json={"site": "testnet-one", "prefixes": ["198.51.100.0/24"]},
    )
    assert r.status_code == 200 and r.json["prefixes"] == ["198.51.100.0/24"], r.json
    clash = cdn.post(
        f"/cdn/isps/{isp.json['id']}/prefixes",
        cdn.admin,
        json={"site": "testnet-one", "prefixes": ["10.1.0.0/16"]},
    )
    assert (
        clash.status_code == 422
        and "body.prefixes[0]: prefix 10.1.0.0/16 is announced by ISP" in clash.json["detail"]
        and "'Testnet'" in clash.json["detail"]
    )
    app = cdn.post(
        "/cdn/appliances",
        cdn.admin,
        json={
            "serial": "T-1",
            "site": "testnet-one",
            "model": "global-120",
            "hostname": "t-1.testnet.example",
        },
    )
    assert app.status_code == 201, app.json
    assert app.json["health"] == "unknown" and len(app.json["components"]) == 14
    # a site that still has appliances cannot go
    gone = _delete(cdn, f"/cdn/sites/{site.json['id']}", cdn.admin)
    assert gone.status_code == 409 and "T-1" in gone.json["detail"]
    moved = _patch(cdn, f"/cdn/appliances/{app.json['id']}", cdn.admin, json={"status": "draining"})
    assert moved.status_code == 200 and moved.json["status"] == "draining"
    renamed = _patch(cdn, f"/cdn/appliances/{app.json['id']}", cdn.admin, json={"serial": "T-2"})
    assert renamed.status_code == 422
    bad = _patch(cdn, f"/cdn/sites/{site.json['id']}", cdn.admin, json={"latitude": 123})
    assert bad.status_code == 422 and "latitude" in str(bad.json)
    assert _delete(cdn, f"/cdn/appliances/{app.json['id']}", cdn.admin).status_code == 204
    still = _delete(cdn, f"/cdn/sites/{site.json['id']}", cdn.admin)
    assert still.status_code == 409 and "is still named in announcements: 1 of them" in still.json["detail"]
    withdrawn = _delete(
        cdn,
        f"/cdn/isps/{isp.json['id']}/prefixes",
        cdn.admin,
        json={"site": "testnet-one", "prefixes": ["198.51.100.0/24"]},
    )
    assert withdrawn.status_code == 200 and withdrawn.json["prefixes"] == []
    assert _delete(cdn, f"/cdn/sites/{site.json['id']}", cdn.admin).status_code == 204
    assert _delete(cdn, f"/cdn/isps/{isp.json['id']}", cdn.admin).status_code == 204
    assert cdn.get(f"/cdn/isps/{isp.json['id']}", cdn.operator).status_code == 404


def test_two_appliances_trading_hostnames_is_a_conflict_not_an_error(cdn: Served) -> None:
    doc = yaml.safe_load(cdn.get("/cdn/topology?format=yaml", cdn.operator).data)
    a, b = doc["appliances"][0], doc["appliances"][1]
    a["hostname"], b["hostname"] = b["hostname"], a["hostname"]
    r = cdn.put("/cdn/topology", cdn.admin, data=yaml.safe_dump(doc), content_type="application/yaml")
    assert r.status_code == 409 and "two steps" in r.json["detail"]
    after = yaml.safe_load(cdn.get("/cdn/topology?format=yaml", cdn.operator).data)
    assert after["appliances"][0]["hostname"] == b["hostname"]  # nothing written


def test_bad_capacities_and_unknown_references_are_refused(cdn: Served) -> None:
    for body in (
        {"name": "m0", "kind": "storage", "storage_tb": 0, "throughput_gbps": 10},
        {"name": "m1", "kind": "storage", "storage_tb": 10, "throughput_gbps": -1},
        {"name": "m2", "kind": "tape", "storage_tb": 10, "throughput_gbps": 1},
        {"name": "m3", "kind": "storage", "storage_tb": 10, "throughput_gbps": 1, "disks": 1.5},  # not 1
    ):
        r = cdn.post("/cdn/appliance-models", cdn.admin, json=body)
        assert r.status_code in (400, 422) and r.mimetype == "application/problem+json", body
    r = cdn.post(
        "/cdn/appliances",
        cdn.admin,
        json={"serial": "X", "site": "nope", "model": "global-120", "hostname": "x.example"},
    )
    assert (
        r.status_code == 422 and "body.site: unknown site 'nope'" in r.json["detail"]
    )  # the request's field
    one = cdn.get("/cdn/appliances?limit=1", cdn.operator).json["items"][0]
    r = _patch(cdn, f"/cdn/appliances/{one['id']}", cdn.admin, json={"model": "nope"})
    assert r.status_code == 422 and "body.model: unknown appliance model 'nope'" in r.json["detail"]


def test_a_value_already_taken_names_the_entry_that_has_it(cdn: Served) -> None:
    """A change through the API is told which stored entry has the name, ASN or hostname, not a path
    in a document it never sent."""
    isp = cdn.get("/cdn/isps?limit=2", cdn.operator).json["items"]
    r = cdn.post("/cdn/isps", cdn.admin, json={"name": isp[0]["name"], "asn": 4_200_000_000})
    assert r.status_code == 409 and f"ISP {isp[0]['name']!r} exists already" in r.json["detail"]
    r = cdn.post("/cdn/isps", cdn.admin, json={"name": "newcomer", "asn": isp[1]["asn"]})
    said = f"body.asn: ASN {isp[1]['asn']} is already used by ISP {isp[1]['name']!r}"
    assert r.status_code == 422 and said in r.json["detail"], r.json
    # Bluepeak's announcement sorts before Northwind's: still said once, at the request's field
    bluepeak = cdn.get("/cdn/isps?name=Bluepeak", cdn.operator).json["items"][0]
    site = cdn.get("/cdn/sites?isp=Bluepeak&limit=1", cdn.operator).json["items"][0]["name"]
    r = cdn.post(
        f"/cdn/isps/{bluepeak['id']}/prefixes", cdn.admin, json={"site": site, "prefixes": ["10.1.0.0/16"]}
    )
    assert r.status_code == 422 and r.json["detail"].count("\n") == 1, r.json  # one problem
    said = "body.prefixes[0]: prefix 10.1.0.0/16 is already announced by ISP 'Northwind' (its announcement to"
    assert said in r.json["detail"], r.json
    one, other = cdn.get("/cdn/appliances?limit=2", cdn.operator).json["items"]
    r = _patch(cdn, f"/cdn/appliances/{one['id']}", cdn.admin, json={"hostname": other["hostname"]})
    said = f"body.hostname: hostname {other['hostname']!r} is already used by appliance {other['serial']!r}"
    assert r.status_code == 422 and said in r.json["detail"], r.json


def test_health_is_the_worst_component_and_unknown_components_are_refused(cdn: Served) -> None:
    app = cdn.get("/cdn/appliances?status=active&limit=1", cdn.operator).json["items"][0]
    url = f"/cdn/appliances/{app['id']}/health"
    r = cdn.post(url, cdn.operator, json={"load": 0.5, "served_gbps": 3, "components": {"disk3": "degraded"}})
    assert r.status_code == 200 and r.json["state"] == "degraded"
    r = cdn.post(
        url,
        cdn.operator,
        json={"load": 0.5, "served_gbps": 3, "components": {"disk3": "ok", "psu0": "failed"}},
    )
    assert r.json["state"] == "failed"
    bad = cdn.post(url, cdn.operator, json={"load": 0.5, "served_gbps": 3, "components": {"disk999": "ok"}})
    assert bad.status_code == 422 and "disk999" in bad.json["detail"]
    assert (
        cdn.get(url, cdn.operator).json["components"]["psu0"] == "failed"
    )  # the refused report wrote nothing
    item = f"/cdn/appliances/{app['id']}"
    assert cdn.get(item, cdn.operator).json["health"] == "failed"
    r = cdn.post(url, cdn.operator, json={"load": 0.5, "served_gbps": 3, "components": {"disk3": "degraded"}})
    assert r.json["state"] == "failed"  # the worst state did not change, a component did
    shown = {c["name"]: c["status"] for c in cdn.get(item, cdn.operator).json["components"]}
    assert shown["disk3"] == "degraded" and shown["psu0"] == "failed"
    assert cdn.post(url, cdn.operator, json={"load": 1.5, "served_gbps": 3}).status_code == 422
    assert (
        cdn.post(
            "/cdn/appliances/999999/health", cdn.operator, json={"load": 0.1, "served_gbps": 1}
        ).status_code
        == 404
    )
    r = cdn.post(
        url, cdn.operator, json={"load": 0.2, "served_gbps": 1, "components": {"psu0": "ok", "disk3": "ok"}}
    )
    assert r.json["state"] == "ok"


def test_a_stale_report_counts_as_unknown(cdn: Served) -> None:
    app = cdn.get("/cdn/appliances?status=active&limit=1&offset=5", cdn.operator).json["items"][0]
    report_health(
        cdn.platform.engine,
        app["id"],
        load=0.1,
        served_gbps=1,
        components={},
        stale_s=300,
        now=time.time() - 3600,
    )
    assert cdn.get(f"/cdn/appliances/{app['id']}/health", cdn.operator).json["state"] == "unknown"
    report_health(cdn.platform.engine, app["id"], load=0.1, served_gbps=1, components={}, stale_s=300)


def test_steering_prefers_the_clients_isp_and_signs_for_the_client(cdn: Served) -> None:
    ip, isp = _embedded_ip(cdn)
    engine = cdn.platform.engine
    with engine.connect() as conn:
        held = holdings(conn)
    title = int(next(iter(held.values()))[0])
    r = cdn.get(f"/cdn/steer?ip={ip}&title={title}&n=3", cdn.member)  # a member token may steer
    assert r.status_code == 200, r.json
    body = r.json
    assert SteerOut().validate(body) == {} and set(body) == set(SteerOut().fields)  # what the docs say
    assert body["isp"] == isp and body["region"] == "us"
    tiers = [c["tier"] for c in body["choices"]]
    assert tiers == sorted(tiers, key=["embedded", "exchange", "remote"].index)
    keys = cdn.platform.steering.keys
    choice = body["choices"][0]
    verified = verify_url(choice["url"], ip, int(time.time()), keys, appliance_id=choice["appliance_id"])
    assert verified.title_id == title
    with pytest.raises(SignatureError):
        verify_url(choice["url"], "10.200.0.1", int(time.time()), keys, appliance_id=choice["appliance_id"])
    assert body["origin"] == 0 and body["origin_url"] is None


def test_a_title_no_appliance_holds_goes_to_the_origin_with_a_signed_url(cdn: Served) -> None:
    from openflix.cdn.signing import ORIGIN
    from openflix.store.schema import Title

    ip, _ = _embedded_ip(cdn)
    with cdn.platform.engine.begin() as conn:  # a title added after the last fill: no appliance has it
        title = int(conn.scalar(select(func.max(Title.id)))) + 1
        conn.execute(insert(Title).values(id=title, name="Premiere", year=2026, genres="Drama"))
    body = cdn.get(f"/cdn/steer?ip={ip}&title={title}", cdn.member).json
    assert body["origin"] == 1 and body["choices"] == []
    assert SteerOut().validate(body) == {} and set(body) == set(SteerOut().fields)
    url = body["origin_url"]
    assert url.startswith(cdn.platform.settings.origin_url + f"/{title}?")
    keys, now = cdn.platform.steering.keys, int(time.time())
    assert verify_url(url, ip, now, keys, appliance_id=ORIGIN).title_id == title
    with pytest.raises(SignatureError):  # the origin's URL is the client's, like any other
        verify_url(url, "10.200.0.1", now, keys, appliance_id=ORIGIN)


def test_a_drained_appliance_is_skipped_at_once_and_the_next_fill_plans_around_it(cdn: Served) -> None:
    ip, _ = _embedded_ip(cdn)
    engine = cdn.platform.engine
    with engine.connect() as conn:
        held = holdings(conn)
    title = int(next(iter(held.values()))[0])
    first = cdn.get(f"/cdn/steer?ip={ip}&title={title}&n=1", cdn.operator).json["choices"][0]
    r = _patch(cdn, f"/cdn/appliances/{first['appliance_id']}", cdn.admin, json={"status": "draining"})
    assert r.status_code == 200
    again = cdn.get(f"/cdn/steer?ip={ip}&title={title}&n=5", cdn.operator).json
    assert first["appliance_id"] not in [c["appliance_id"] for c in again["choices"]]
    drained = cdn.get(f"/cdn/appliances/{first['appliance_id']}", cdn.operator).json
    with engine.connect() as conn:
        kept = holdings(conn)[first["appliance_id"]]
        site_apps = [r.id for r in appliance_rows(conn) if r.site == drained["site"]]
    report = fill_site(engine, drained["site"], title_gb=100.0, stale_s=300)
    assert f"{drained['serial']} (draining)" in report.skipped
    assert report.appliances == len(site_apps) - len(report.skipped)
    with engine.connect() as conn:
        after = holdings(conn)
    assert list(after[first["appliance_id"]]) == list(kept)  # it keeps its content, gets no manifest
    placed = set(np.concatenate([after.get(a, []) for a in site_apps if a != first["appliance_id"]]).tolist())
    assert title in placed  # its titles moved to the others
    _patch(cdn, f"/cdn/appliances/{first['appliance_id']}", cdn.admin, json={"status": "active"})


@pytest.mark.parametrize("how", ["status failed", "status offline", "component failed", "report failed"])
def test_a_failed_or_offline_appliance_is_skipped_at_once_and_back_once_repaired(
    cdn: Served, how: str
) -> None:
    ip, _ = _embedded_ip(cdn)
    with cdn.platform.engine.connect() as conn:
        title = int(next(iter(holdings(conn).values()))[0])
    steer = f"/cdn/steer?ip={ip}&title={title}&n=5"
    first = cdn.get(steer, cdn.operator).json["choices"][0]["appliance_id"]
    item = f"/cdn/appliances/{first}"
    disk = cdn.get(f"{item}/components?kind=disk&limit=1", cdn.operator).json["items"][0]["name"]
    breaks, repairs = {
        "status failed": ((item, {"status": "failed"}), (item, {"status": "active"})),
        "status offline": ((item, {"status": "offline"}), (item, {"status": "active"})),
        "component failed": ((f"{item}/components/{disk}", {"status": "failed"}),
                             (f"{item}/components/{disk}", {"status": "ok"})),
        "report failed": (None, None),
    }[how]  # fmt: skip
    if breaks is None:  # the appliance itself says a PSU failed, then that it was swapped
        report = {"load": 0.3, "served_gbps": 1.0}
        assert (
            cdn.post(
                f"{item}/health", cdn.operator, json={**report, "components": {"psu0": "failed"}}
            ).status_code
            == 200
        )
        out = cdn.get(steer, cdn.operator).json["choices"]
        assert (
            cdn.post(
                f"{item}/health", cdn.operator, json={**report, "components": {"psu0": "ok"}}
            ).status_code
            == 200
        )
    else:
        assert _patch(cdn, breaks[0], cdn.admin, json=breaks[1]).status_code == 200
        out = cdn.get(steer, cdn.operator).json["choices"]
        assert _patch(cdn, repairs[0], cdn.admin, json=repairs[1]).status_code == 200
    assert out and first not in [c["appliance_id"] for c in out], how
    assert cdn.get(steer, cdn.operator).json["choices"][0]["appliance_id"] == first  # back once repaired


def test_filling_every_site_in_one_run_plans_what_filling_each_alone_did(cdn: Served) -> None:
    engine = cdn.platform.engine
    names = fill_order(engine)
    with engine.connect() as conn:
        fills = conn.scalar(select(func.count()).select_from(Fill))
    with pytest.raises(NotFoundError, match="'atlantis'"):
        list(fill_sites(engine, [*names, "atlantis"], title_gb=100.0, stale_s=300))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Fill)) == fills  # refused before planning any
    reports = list(fill_sites(engine, names, title_gb=100.0, stale_s=300))
    assert [r.site for r in reports] == names
    assert all(r.copies > 0 for r in reports if r.appliances)
    alone = [fill_site(engine, n, title_gb=100.0, stale_s=300) for n in names]
    expected = [(r.site, r.copies, 0, 0) for r in reports]
    assert [(r.site, r.copies, r.added, r.deleted) for r in alone] == expected


def test_steering_sends_a_fills_new_titles_to_an_appliance_once_it_applied_its_manifest(cdn: Served) -> None:
    ip, _ = _embedded_ip(cdn)
    engine = cdn.platform.engine
    site = "northwind-bos"  # ip is announced to it
    model = cdn.get("/cdn/appliances?site=northwind-bos&limit=1", cdn.operator).json["items"][0]["model"]
    new = cdn.post(
        "/cdn/appliances",
        cdn.admin,
        json={"serial": "NEW-1", "site": site, "model": model, "hostname": "new-1.northwind.example"},
    )
    assert new.status_code == 201, new.json
    victim = new.json["id"]
    report_health(engine, victim, load=0.0, served_gbps=0.0, components={}, stale_s=300)
    first = fill_site(engine, site, title_gb=100.0, stale_s=300)  # about 1/N of the site's titles move to it
    url = f"/cdn/appliances/{victim}/manifest"
    added = cdn.get(url, cdn.operator).json["add"]
    assert added
    # the appliance misses that night; the next fill changes nothing more, so its own manifest is empty,
    # but what the appliance is handed still holds everything it lacks
    report = fill_site(engine, site, title_gb=100.0, stale_s=300)
    manifest = cdn.get(url, cdn.operator).json
    assert manifest["fill_id"] == report.fill_id and manifest["since"] == first.fill_id
    assert manifest["applied_at"] is None and manifest["add"] == added

    def steered(title: int) -> list[int]:
        r = cdn.get(f"/cdn/steer?ip={ip}&title={title}&n=10", cdn.operator)
        return [c["appliance_id"] for c in r.json["choices"]]

    titles = manifest["add"][:20]
    assert all(victim not in steered(t) for t in titles)  # planned, not fetched yet
    r = cdn.post(url, cdn.operator, json={"fill_id": report.fill_id})
    assert r.status_code == 200 and r.json["applied"] == 2 and r.json["pending"] == 0
    assert cdn.get(url, cdn.operator).json["applied_at"] is not None
    assert all(victim in steered(t) for t in titles)  # an unloaded embedded appliance that holds it
    assert cdn.post(url, cdn.operator, json={"fill_id": 10**9}).status_code == 404
    assert cdn.post("/cdn/appliances/99999999/manifest", cdn.operator, json={"fill_id": 1}).status_code == 404
    assert cdn.post(url, cdn.member, json={"fill_id": report.fill_id}).status_code == 403
    assert cdn.post(url, cdn.operator, json={"fill_id": "soon"}).status_code in (400, 422)
    apply_pending(engine)


def test_an_appliance_reads_its_manifest(cdn: Served) -> None:
    engine = cdn.platform.engine
    with engine.connect() as conn:
        held = holdings(conn)
    appliance = next(a for a, titles in held.items() if titles.size)
    r = cdn.get(f"/cdn/appliances/{appliance}/manifest", cdn.operator)
    assert r.status_code == 200
    body = r.json
    assert body["holds"] == held[appliance].size and body["fill_id"] is not None
    assert set(body["add"]) <= set(held[appliance].tolist())
    assert body["source"] == "origin" or body["source"].startswith("ix-")
    assert cdn.get("/cdn/appliances/99999999/manifest", cdn.operator).status_code == 404
    assert cdn.get(f"/cdn/appliances/{appliance}/manifest", cdn.member).status_code == 403


def test_steering_bad_input(cdn: Served) -> None:
    assert cdn.get("/cdn/steer?ip=10.1.2.300&title=1", cdn.operator).status_code == 422
    assert cdn.get("/cdn/steer?ip=10.1.2.3&title=99999999", cdn.operator).status_code == 404
    assert cdn.get("/cdn/steer?title=1", cdn.operator).status_code in (400, 422)
    r = cdn.get("/cdn/steer?ip=10.1.2.3&title=1&count=5", cdn.operator)  # n is the count
    assert r.status_code == 422 and "query.count" in r.json["detail"], r.json
    r = cdn.get("/cdn/topology?fmt=yaml", cdn.operator)
    assert r.status_code == 422 and "query.fmt" in r.json["detail"], r.json
    r = cdn.get("/cdn/steer?ip=203.0.113.9&title=1", cdn.operator).json  # announced by nobody
    assert r["isp"] is None and r["region"] == "us"


def test_a_fill_job_runs_and_reports(cdn: Served) -> None:
    r = cdn.post("/jobs", cdn.operator, json={"kind": "fill", "params": {"site": "ix-lon"}})
    assert r.status_code == 202
    info = cdn.platform.jobs.wait(r.json["id"], timeout=120)  # type: ignore[attr-defined]
    assert info.status == "finished", info
    site = info.result["sites"][0]
    assert site["site"] == "ix-lon" and site["source"] == "origin" and site["copies"] > 0
    # refused when submitted, naming the parameter: nothing is queued (a mistyped key would fill every site)
    for params, message in (
        ({"site": "nowhere"}, "params.site: site 'nowhere' does not exist"),
        ({"sites": "ix-lon"}, "params.sites: not a parameter of the fill job (expected site, day)"),
        ({"day": "yesterday"}, "params.day: expected a date YYYY-MM-DD, got 'yesterday'"),
        ({"site": 7}, "params.site: expected a string, got int"),
    ):
        bad = cdn.post("/jobs", cdn.operator, json={"kind": "fill", "params": params})
        assert bad.status_code == 422 and message in bad.json["detail"], bad.json


def _located_plays(
    cdn: Served, when: Any, tag: str
) -> tuple[int, list[Any], np.ndarray, list[dict[str, Any]]]:
    """30 plays of a new title (nobody played it) by members on Northwind Boston's addresses at
    ``when``: (the title's index, the sites, the title ids, the events)."""
    from openflix.store.schema import Member, Site, Title

    engine = cdn.platform.engine
    with engine.begin() as conn:
        new = int(conn.scalar(select(func.max(Title.id))) or 0) + 1
        conn.execute(insert(Title).values(id=new, name=f"New Title {tag}", genres="Drama"))
        us = select(Member.id).where(Member.region == "us").order_by(Member.id).limit(30)
        members = list(conn.scalars(us))
        sites = list(conn.execute(select(Site).order_by(Site.id)).all())
        titles = np.array(conn.scalars(select(Title.id).order_by(Title.id)).all(), dtype=np.int64)
    events = [
        {"member_id": m, "title_id": new, "kind": "play", "timestamp": when.isoformat(),
         "client_ip": f"10.1.{k}.9", "idempotency_key": f"{tag}-{cdn.backend}-{m}"}
        for k, m in enumerate(members)
    ]  # fmt: skip
    r = cdn.post("/events/bulk", cdn.operator, json={"events": events})
    assert r.status_code == 200, r.json
    assert len(members) == 30
    return int(np.searchsorted(titles, new)), sites, titles, events


def test_plays_from_an_isps_addresses_count_at_the_site_it_announces_them_to(cdn: Served) -> None:
    """Members whose plays carry addresses belong to the site serving those addresses, not to the
    embedded site their member id would pick; the fill plans that site for their plays."""
    from datetime import UTC, datetime, timedelta

    from openflix.services.fill import PlayLog, demand, site_members
    from openflix.store.schema import Event

    engine = cdn.platform.engine
    with engine.connect() as conn:
        newest = int(conn.scalar(select(func.max(Event.ts))) or 0)
    when = datetime.fromtimestamp(newest, UTC) + timedelta(hours=1)
    t, sites, titles, events = _located_plays(cdn, when, "located")
    members = [e["member_id"] for e in events]
    unplayed = int(titles[t])
    bos = next(s for s in sites if s.name == "northwind-bos")  # announces 10.1.0.0/16
    sea = next(s for s in sites if s.name == "cascade-sea")  # same region, other ISP
    day = (when + timedelta(days=1)).date()
    before = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    log = PlayLog.load(engine, titles, before, before)
    at_bos, at_sea = (
        demand(log, bos, sites, before, titles.size),
        demand(log, sea, sites, before, titles.size),
    )
    assert at_bos[t] > 1e-3  # the 30 plays, forecast at the site serving their addresses
    assert at_sea[t] < 1e-5  # elsewhere only the all-time tie-breaking floor
    report = fill_site(engine, "northwind-bos", title_gb=100.0, stale_s=300, day=day)
    with engine.connect() as conn:
        held = holdings(conn)
        ids = [r.id for r in appliance_rows(conn, site_id=bos.id)]
    assert report.fill_id is not None
    assert any(unplayed in held.get(a, []) for a in ids)

    # the same members move to Cascade's network during the planned day: a fill of that day must not
    # know it yet, even when the plays loaded for a run reach into later days of other time zones
    later = [
        {**e, "timestamp": (when + timedelta(days=1, hours=2)).isoformat(), "client_ip": f"10.3.{k}.9",
         "idempotency_key": f"moved-{cdn.backend}-{e['member_id']}"}
        for k, e in enumerate(events)
    ]  # fmt: skip
    assert cdn.post("/events/bulk", cdn.operator, json={"events": later}).status_code == 200
    log = PlayLog.load(engine, titles, before, before + 2 * 86_400)
    assert set(members) <= set(site_members(log, bos, sites, before).tolist())
    assert not set(members) & set(site_members(log, sea, sites, before).tolist())
    next_day = before + 2 * 86_400
    assert set(members) <= set(site_members(log, sea, sites, next_day).tolist())
    assert not set(members) & set(site_members(log, bos, sites, next_day).tolist())


def test_the_evening_before_a_sites_local_day_counts_in_its_forecast(cdn: Served) -> None:
    """Boston's day starts at 05:00 UTC: plays at 23:00 local the evening before are yesterday's, the
    freshest the fill has (they were dropped with the UTC day they fall in)."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from openflix.services.fill import PlayLog, demand
    from openflix.store.schema import Event

    engine = cdn.platform.engine
    with engine.connect() as conn:
        newest = int(conn.scalar(select(func.max(Event.ts))) or 0)
    boston = ZoneInfo("America/New_York")
    day = (datetime.fromtimestamp(newest, boston) + timedelta(days=3)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=boston)
    t, sites, titles, _ = _located_plays(cdn, (start - timedelta(hours=1)).astimezone(UTC), "evening")
    bos = next(s for s in sites if s.name == "northwind-bos")
    assert bos.timezone == "America/New_York"
    before = int(start.timestamp())
    log = PlayLog.load(engine, titles, before, before)
    assert demand(log, bos, sites, before, titles.size)[t] > 1e-3  # not only the all-time floor


def test_a_day_long_after_the_data_ends_is_forecast_from_its_last_plays(cdn: Served) -> None:
    """The nightly clock fills the real date; on data that ended years ago (MovieLens) the forecast is
    that of the data's last day, not the all-time floor of an empty 365-day window."""
    from datetime import UTC, date, datetime, timedelta

    from openflix.services.fill import PlayLog, data_now, demand, planned_day
    from openflix.store.schema import Event

    engine = cdn.platform.engine
    with engine.connect() as conn:
        newest = int(conn.scalar(select(func.max(Event.ts))) or 0)
    last_hour = datetime.fromtimestamp(newest, UTC) + timedelta(hours=1)
    t, sites, titles, _ = _located_plays(cdn, last_hour, "late")
    bos = next(s for s in sites if s.name == "northwind-bos")
    now = data_now(engine)
    years_later = date.fromtimestamp(now) + timedelta(days=3 * 365)
    day, before = planned_day(bos, now, years_later)
    assert day == years_later and before == now  # the forecast ends where the data does
    log = PlayLog.load(engine, titles, before, before)
    assert demand(log, bos, sites, before, titles.size)[t] > 1e-3
    report = fill_site(engine, "northwind-bos", title_gb=100.0, stale_s=300, day=years_later)
    assert report.day == years_later.isoformat() and report.fill_id is not None


def test_components_are_listed_fleet_wide_and_changed_one_at_a_time(cdn: Served) -> None:
    app = cdn.get("/cdn/appliances?status=active&limit=200", cdn.operator).json["items"][-1]
    base = f"/cdn/appliances/{app['id']}/components"
    mine = cdn.get(f"{base}?limit=200", cdn.operator).json
    assert mine["total"] == len(app["components"]) > 0
    assert [c["name"] for c in mine["items"]] == [c["name"] for c in app["components"]]
    assert all(c["appliance"] == app["id"] and c["serial"] == app["serial"] for c in mine["items"])
    disks = cdn.get(f"{base}?kind=disk&limit=200", cdn.operator).json["items"]
    assert disks and all(c["kind"] == "disk" for c in disks)

    # a failed disk shows in the fleet-wide list, and in the appliance's health
    before = cdn.get("/cdn/components?kind=disk&status=failed&limit=200", cdn.operator).json["total"]
    disk = disks[0]["name"]
    r = _patch(cdn, f"{base}/{disk}", cdn.admin, json={"status": "failed"})
    assert r.status_code == 200 and r.json["status"] == "failed", r.json
    failed = cdn.get("/cdn/components?kind=disk&status=failed&limit=200", cdn.operator).json
    assert failed["total"] == before + 1 and (app["id"], disk) in {
        (c["appliance"], c["name"]) for c in failed["items"]
    }
    assert cdn.get(f"/cdn/appliances/{app['id']}", cdn.operator).json["health"] == "failed"
    site = cdn.get(f"/cdn/components?site={app['site']}&status=failed", cdn.operator).json["items"]
    assert {c["site"] for c in site} == {app["site"]} and disk in {c["name"] for c in site}
    assert _patch(cdn, f"{base}/{disk}", cdn.admin, json={"status": "ok"}).json["status"] == "ok"  # replaced
    assert cdn.get(f"/cdn/appliances/{app['id']}", cdn.operator).json["health"] == "ok"

    # add, read, refuse a second of the same name, remove
    r = cdn.post(base, cdn.admin, json={"name": "nic9", "kind": "nic"})
    assert r.status_code == 201 and r.json["status"] == "ok", r.json
    assert cdn.get(f"{base}/nic9", cdn.operator).json["kind"] == "nic"
    assert cdn.post(base, cdn.admin, json={"name": "nic9", "kind": "nic"}).status_code == 409
    exported = yaml.safe_load(cdn.get("/cdn/topology?format=yaml", cdn.operator).data)
    entry = next(a for a in exported["appliances"] if a["serial"] == app["serial"])
    assert "nic9" in {c["name"] for c in entry["components"]}
    assert _delete(cdn, f"{base}/nic9", cdn.admin).status_code == 204
    assert cdn.get(f"{base}/nic9", cdn.operator).status_code == 404
    assert cdn.get(f"{base}?limit=200", cdn.operator).json["total"] == mine["total"]

    # bad input: a clear 4xx, nothing written
    for r, status in (
        (cdn.post(base, cdn.admin, json={"name": "x1", "kind": "gpu"}), 422),
        (_patch(cdn, f"{base}/{disk}", cdn.admin, json={"status": "melted"}), 422),
        (_patch(cdn, f"{base}/{disk}", cdn.admin, json={"name": "disk77"}), 422),
        (_patch(cdn, f"{base}/nope", cdn.admin, json={"status": "ok"}), 404),
        (cdn.get("/cdn/appliances/999999/components", cdn.operator), 404),
        (cdn.get("/cdn/components?colour=red", cdn.operator), 422),
        (cdn.post(base, cdn.operator, json={"name": "x2", "kind": "nic"}), 403),
    ):
        assert r.status_code == status and r.mimetype == "application/problem+json", (status, r.json)
    assert cdn.get(f"{base}?limit=200", cdn.operator).json["items"] == mine["items"]
    assert cdn.get("/cdn/components?appliance=999999", cdn.operator).json["total"] == 0  # a filter, not a 404
    assert (
        cdn.get(f"/cdn/components?appliance={app['id']}&limit=200", cdn.operator).json["items"]
        == mine["items"]
    )


def test_steering_follows_fills_and_applied_manifests_reading_only_the_appliances_they_changed(
    cdn: Served,
) -> None:
    from openflix.cdn.steering import Holders
    from openflix.store.cdn import servable

    engine, service = cdn.platform.engine, cdn.platform.steering
    site = "thames-lon"
    apps = cdn.get(f"/cdn/appliances?site={site}&status=active", cdn.operator).json["items"]
    drained = apps[0]["id"]
    assert (
        _patch(cdn, f"/cdn/appliances/{drained}", cdn.admin, json={"status": "draining"}).status_code == 200
    )
    service.snapshot()  # an inventory change: read whole
    first = service._placement
    assert first is not None

    def same_as_a_whole_read() -> None:
        service.snapshot()
        now = service._placement
        assert now is not None and now.read_at == first.read_at  # advanced, not read whole
        with engine.connect() as conn:
            whole = servable(conn)
        assert now.servable.keys() == whole.keys()
        assert all(np.array_equal(now.servable[a], whole[a]) for a in whole)
        assert now.holders.as_sets() == Holders.from_arrays(whole).as_sets()
        assert service.snapshot()._bitmaps is now.holders.bitmaps  # the snapshot in use steers by it

    report = fill_site(engine, site, title_gb=100.0, stale_s=300)  # its titles planned on the others
    same_as_a_whole_read()
    other = apps[1]["id"]
    assert cdn.get(f"/cdn/appliances/{other}/manifest", cdn.operator).json["add"]
    r = cdn.post(f"/cdn/appliances/{other}/manifest", cdn.operator, json={"fill_id": report.fill_id})
    assert r.status_code == 200
    same_as_a_whole_read()
    apply_pending(engine)
    same_as_a_whole_read()
    _patch(cdn, f"/cdn/appliances/{drained}", cdn.admin, json={"status": "active"})


def test_an_old_placement_is_read_whole_again_in_the_background(cdn: Served) -> None:
    """Past COPY_MAX_AGE the whole placement is read again off the request path, then swapped in."""
    import dataclasses

    from openflix.cdn.steering import Holders
    from openflix.store.cdn import servable

    engine, service = cdn.platform.engine, cdn.platform.steering
    service.snapshot()
    if service.refresher is not None:  # no background build may swap the copy under the test
        service.refresher.join(30)
    old = service._placement
    assert old is not None
    # as if read two minutes ago, and missing a title an appliance got around the store
    title = next(iter(old.holders.bitmaps))
    holders = old.holders.changed({a: ([], [title]) for a in old.holders.holding(title)})
    assert title not in holders.bitmaps
    service._placement = dataclasses.replace(old, holders=holders, read_at=old.read_at - 120.0)
    service._snapshot = None
    service.snapshot()  # answered from the old copy, which starts the read
    assert service.rereader is not None
    service.rereader.join(30)
    fresh = service._placement
    assert fresh.read_at > old.read_at
    with engine.connect() as conn:
        assert fresh.holders.as_sets() == Holders.from_arrays(servable(conn)).as_sets()
    assert title in service.snapshot()._bitmaps  # the snapshot in use was given the fresh copy


def test_an_appliance_removed_and_another_added_in_its_place_is_seen_at_once(cdn: Served) -> None:
    """Holdings change without a manifest when the inventory does, and on SQLite a new appliance takes
    the id of the newest one removed: the placement is read whole, so no client is sent to an empty one."""
    ip, _ = _embedded_ip(cdn)
    engine, site = cdn.platform.engine, "northwind-bos"  # ip is announced to it
    model = cdn.get(f"/cdn/appliances?site={site}&limit=1", cdn.operator).json["items"][0]["model"]

    def add(serial: str) -> int:
        body = {"serial": serial, "site": site, "model": model, "hostname": f"{serial.lower()}.example"}
        r = cdn.post("/cdn/appliances", cdn.admin, json=body)
        assert r.status_code == 201, r.json
        report_health(engine, r.json["id"], load=0.0, served_gbps=0.0, components={}, stale_s=300)
        return int(r.json["id"])

    old = add("GONE-1")  # the newest appliance: unloaded, so ranked first where it holds a title
    fill_site(engine, site, title_gb=100.0, stale_s=300)
    apply_pending(engine)
    with engine.connect() as conn:
        title = int(holdings(conn)[old][0])
    steer = f"/cdn/steer?ip={ip}&title={title}&n=10"
    assert old in [c["appliance_id"] for c in cdn.get(steer, cdn.operator).json["choices"]]
    assert _delete(cdn, f"/cdn/appliances/{old}", cdn.admin).status_code == 204
    new = add("NEW-2")
    chosen = [c["appliance_id"] for c in cdn.get(steer, cdn.operator).json["choices"]]
    assert chosen and new not in chosen, (old, new, chosen)  # it holds nothing yet, whatever its id
    assert _delete(cdn, f"/cdn/appliances/{new}", cdn.admin).status_code == 204


def test_a_bad_origin_url_setting_is_said_when_steering_starts(cdn: Served) -> None:
    import dataclasses

    from openflix.errors import ConfigError
    from openflix.services.steering import SteeringService

    for bad in ("origin.example/v1", "ftp://origin.example", "https://origin.example/v1?x=1"):
        settings = dataclasses.replace(cdn.platform.settings, origin_url=bad)
        with pytest.raises(ConfigError, match=r"OPENFLIX_ORIGIN_URL: .*http"):
            SteeringService(cdn.platform.engine, settings)


@pytest.fixture
def private_steering(cdn: Served) -> Iterator[Any]:
    """A steering service of its own (its age and builds changed freely), with a title and a client."""
    from openflix.services.steering import SteeringService

    service = SteeringService(cdn.platform.engine, cdn.platform.settings)
    ip, _ = _embedded_ip(cdn)
    with cdn.platform.engine.connect() as conn:
        title = int(next(iter(holdings(conn).values()))[0])
    try:
        yield service, ip, title
    finally:
        service.max_age = 3600.0  # no build starts after the test
        for thread in (service.refresher, service.rereader):
            if thread is not None:
                thread.join(30)
        service.reader.close()


def test_an_old_snapshot_is_rebuilt_in_the_background_while_requests_go_on(private_steering: Any) -> None:
    """Past max_age (load headroom, reports gone stale) the snapshot is built again on a thread; the
    request that finds it old is answered at once from the one it has."""
    import threading

    service, ip, title = private_steering
    first = service.steer(ip, title).decision
    old = service._snapshot
    assert old is not None
    release, builds = threading.Event(), []
    build = service._build

    def slow_build(placement: Any) -> Any:
        builds.append(placement)
        assert release.wait(30)
        return build(placement)

    service._build = slow_build
    service.max_age = 0.5  # far too old (rebuilt before answering) only past 3 s
    time.sleep(0.6)
    started = time.monotonic()
    for _ in range(3):  # none waits for the build, and one build runs
        assert service.steer(ip, title).decision == first
    assert time.monotonic() - started < 1.0 and service._snapshot is old
    assert service.refresher is not None and service.refresher.is_alive()
    release.set()
    service.refresher.join(30)
    assert len(builds) == 1 and service._snapshot is not old and service._snapshot.built > old.built
    service.max_age = 3600.0
    assert service.steer(ip, title).decision == first


def test_a_snapshot_left_far_too_old_is_rebuilt_before_the_answer(
    private_steering: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that sat idle does not answer from a snapshot of any age, and a build that fails in
    the background is logged once per max_age, not on every request."""
    service, ip, title = private_steering
    service.steer(ip, title)
    old = service._snapshot
    calls = []
    build = service._build

    def failing(placement: Any) -> Any:
        calls.append(placement)
        raise RuntimeError("the build failed")

    service._build = failing
    service.max_age = 0.2
    time.sleep(0.25)  # old, not yet far too old: answered from it, the build fails in the background
    for _ in range(50):
        service.steer(ip, title)
        if service.refresher is not None:
            service.refresher.join(10)
    assert len(calls) == 1 and service._snapshot is old
    assert sum("could not rebuild the steering snapshot" in r.getMessage() for r in caplog.records) == 1
    service._build = build
    time.sleep(6 * 0.2 + 0.1)  # far too old: rebuilt before the answer
    service.steer(ip, title)
    assert service._snapshot is not old and time.monotonic() - service._snapshot.built < 1.0


def test_a_worker_builds_its_steering_snapshot_before_its_first_request(cdn: Served) -> None:
    """prepare() reads the placement at boot (and freezes it with the rest), so the first playback
    a worker steers does not wait for the whole read."""
    import gc

    from openflix.api import create_app, prepare
    from openflix.services.platform import Platform

    platform = Platform(cdn.platform.settings)
    try:
        prepare(create_app(platform=platform))
        snapshot = platform.steering._snapshot
        assert snapshot is not None and snapshot.steering.n_appliances > 0
        assert all(o is not snapshot.steering for o in gc.get_objects())  # frozen: built before
    finally:
        gc.unfreeze()
        platform.close()


def test_a_malformed_url_key_setting_names_the_variable() -> None:
    from openflix.errors import ConfigError
    from openflix.services.steering import signing_keys
    from openflix.settings import Settings

    with pytest.raises(
        ConfigError, match=r"^OPENFLIX_URL_KEYS: signing keys: entry 1 must be KEY_ID:HEX_SECRET"
    ):
        signing_keys(Settings(url_keys="zz"))
