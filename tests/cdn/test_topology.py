"""The topology document: the sample validates, round-trips, and every kind of bad input is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from openflix.cdn.topology import dump, load_file, parse, parse_text
from openflix.errors import DataError

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "topology.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(SAMPLE.read_text())


def test_the_sample_topology_has_a_few_regions_and_hundreds_of_appliances() -> None:
    topo = load_file(SAMPLE)
    assert len({s.region for s in topo.sites}) >= 4
    assert {str(s.kind) for s in topo.sites} == {"embedded", "exchange"}
    assert len(topo.appliances) >= 200
    assert all(a.components for a in topo.appliances)  # from the model's layout
    v6 = [p for a in topo.announcements for p in a.prefixes if ":" in p]
    assert v6, "IPv6 prefixes are announced too"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_a_dump_parses_back_to_the_same_topology(fmt: str) -> None:
    topo = load_file(SAMPLE)
    assert parse_text(dump(topo, fmt)) == topo


def _problems(doc: dict[str, Any]) -> str:
    with pytest.raises(DataError) as info:
        parse(doc, source="t.yaml", text=yaml.safe_dump(doc, sort_keys=False))
    return str(info.value)


def test_a_prefix_of_two_isps_is_refused_naming_both(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    theirs = bad["announcements"][0]["prefixes"][0]
    other = next(a for a in bad["announcements"] if a["isp"] != bad["announcements"][0]["isp"])
    other["prefixes"].append(theirs)
    message = _problems(bad)
    assert theirs in message
    assert repr(bad["announcements"][0]["isp"]) in message and repr(other["isp"]) in message
    assert "nothing was written" in message


def test_nested_prefixes_of_one_isp_are_fine(doc: dict[str, Any]) -> None:
    topo = parse(doc)
    first = topo.announcements[0].prefixes
    assert any(p.endswith("/16") for p in first) and any(p.endswith("/18") for p in first)


def test_every_problem_is_listed_with_its_place_and_line(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    bad["sites"][0]["latitude"] = 123
    bad["appliance_models"][0]["storage_tb"] = 0
    bad["appliance_models"][1]["throughput_gbps"] = -5
    bad["appliances"][3]["site"] = "atlantis"
    bad["appliances"][4]["serial"] = bad["appliances"][5]["serial"]
    bad["announcements"][1]["prefixes"].append("10.0.0.1/8")
    bad["announcements"][2]["prefixes"].append("not-an-ip")
    bad["regions"][0]["prefixes"].append("300.1.0.0/16")
    bad["sites"][1]["timezone"] = "Mars/Olympus"
    bad["appliances"][6]["status"] = "sleepy"
    bad["sites"][2]["fill_window"] = "03:00-03:00"
    message = _problems(bad)
    for expected in (
        "sites[0].latitude: expected a number >= -90 and <= 90, got 123",
        "appliance_models[0].storage_tb: expected a number > 0",
        "appliance_models[1].throughput_gbps",
        "appliances[3].site: unknown site 'atlantis'",
        "appears twice",
        "'10.0.0.1/8' is not a network in CIDR form",
        "'not-an-ip'",
        "'300.1.0.0/16'",
        "'Mars/Olympus' is not an IANA time zone",
        "appliances[6].status: expected one of active, draining, offline, failed, got 'sleepy'",
        "sites[2].fill_window: a window that ends when it starts never comes (got '03:00-03:00')",
    ):
        assert expected in message, expected
    assert "t.yaml:" in message and message.count("\n") >= 10


def test_an_announcement_to_another_isps_site_is_refused(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    a, b = (
        bad["announcements"][0],
        next(x for x in bad["announcements"] if x["isp"] != bad["announcements"][0]["isp"]),
    )
    a["site"] = b["site"]
    assert "is not an embedded site of ISP" in _problems(bad)


def test_an_embedded_site_needs_an_isp_and_an_exchange_site_has_none(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    embedded = next(s for s in bad["sites"] if s["kind"] == "embedded")
    exchange = next(s for s in bad["sites"] if s["kind"] == "exchange")
    del embedded["isp"]
    exchange["isp"] = "Northwind"
    message = _problems(bad)
    assert "must name the ISP" in message and "belongs to no ISP" in message


def test_malformed_text_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("sites:\n  - name: a\n    kind: [embedded\n")
    with pytest.raises(DataError, match=r"t\.yaml:\d+: not valid JSON or YAML"):
        load_file(path)
    with pytest.raises(DataError, match="no such topology file"):
        load_file(tmp_path / "missing.yaml")
    with pytest.raises(DataError, match="expected a mapping"):
        parse_text(json.dumps([1, 2]))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # JSON: the parser's recursion
        ("a: " + "[" * 100_000, "nested too deeply"),  # YAML
        ('{"default_region": ' + "9" * 5_000 + "}", "value has 5000 digits"),
    ],
)
def test_a_document_the_parsers_cannot_hold_is_refused_not_a_traceback(text: str, problem: str) -> None:
    with pytest.raises(DataError, match=f"t.json: not valid JSON or YAML: .*{problem}"):
        parse_text(text, "t.json")


def test_a_key_given_twice_is_refused_naming_both_lines_not_resolved_to_the_last() -> None:
    text = SAMPLE.read_text()
    # a second, short `sites:` section at the end: a reader keeping the last would drop every other site
    twice = text + "sites:\n  - {name: ix-x, kind: exchange, region: us}\n"
    last = len(twice.splitlines()) - 1
    first = next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith("sites:"))
    with pytest.raises(DataError) as yaml_error:
        parse_text(twice, "t.yaml")
    assert f"t.yaml:{last}: key 'sites' appears twice" in str(yaml_error.value)
    assert f"first at line {first}" in str(yaml_error.value)
    as_json = '{"default_region": "us",\n "regions": [],\n "regions": [{"name": "us"}]}'
    with pytest.raises(DataError, match=r"t\.json:3: key 'regions' appears twice .*first at line 2"):
        parse_text(as_json, "t.json")
    nested = "appliances:\n  - {serial: A, status: active, status: failed}\n"
    with pytest.raises(DataError, match=r":2: key 'status' appears twice"):
        parse_text(nested)


def test_every_section_is_required_so_a_partial_document_cannot_empty_the_inventory(
    doc: dict[str, Any],
) -> None:
    with pytest.raises(DataError) as empty:
        parse_text("{}", "body")
    message = str(empty.value)
    assert "6 problem(s)" in message
    for section in ("regions", "appliance_models", "isps", "sites", "announcements", "appliances"):
        assert f"{section}: expected a list (write [] for none), got missing" in message
    partial = {k: v for k, v in doc.items() if k != "appliances"}
    with pytest.raises(DataError, match="appliances: expected a list"):
        parse(partial)
    nothing = dict.fromkeys(("regions", "appliance_models", "isps", "sites", "announcements", "appliances"))
    with pytest.raises(DataError, match=r"sites: expected a list .*got null"):
        parse(nothing)
    empty_on_purpose = {k: [] for k in nothing}
    assert parse(empty_on_purpose).appliances == ()
