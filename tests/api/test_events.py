"""Event ingest: idempotent, all-or-nothing in bulk, with clear errors."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select

from openflix.store.schema import Event
from tests.api.conftest import Served

_keys = itertools.count()


def _count(served: Served) -> int:
    with served.platform.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Event)) or 0)


def _play(served: Served, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "member_id": served.member_id,
        "title_id": 1,
        "kind": "play",
        "position_s": 600,
        "duration_s": 5400,
        "timestamp": "2020-01-01T12:00:00Z",
        "device": "tv",
        "idempotency_key": f"test-{served.backend}-{next(_keys)}",
    }
    event.update(changes)
    return event


def test_a_retried_event_is_stored_once(served: Served) -> None:
    before = _count(served)
    event = _play(served)
    first = served.post("/events", served.member, json=event)
    again = served.post("/events", served.member, json=event)
    assert first.status_code == 201 and first.get_json()["created"] is True
    assert again.status_code == 200 and again.get_json() == {"id": first.get_json()["id"], "created": False}
    assert _count(served) == before + 1


def test_an_event_without_a_key_dedups_on_its_content(served: Served) -> None:
    event = _play(served)
    del event["idempotency_key"]
    ids = [served.post("/events", served.member, json=event).get_json()["id"] for _ in range(2)]
    assert ids[0] == ids[1]


def test_a_key_reused_for_another_event_is_409_and_stores_nothing(served: Served) -> None:
    event = _play(served)
    assert served.post("/events", served.member, json=event).status_code == 201
    before = _count(served)
    r = served.post("/events", served.member, json={**event, "position_s": 900})
    assert r.status_code == 409 and "idempotency key" in r.get_json()["detail"]
    assert _count(served) == before


def test_bulk_is_all_or_nothing(served: Served) -> None:
    before = _count(served)
    good = [_play(served) for _ in range(3)]
    bad = _play(served, title_id=987654321)
    r = served.post("/events/bulk", served.operator, json={"events": [*good, bad]})
    assert r.status_code == 422
    assert "events[3].title_id" in r.get_json()["detail"] and "987654321" in r.get_json()["detail"]
    assert _count(served) == before
    r = served.post("/events/bulk", served.operator, json={"events": good})
    assert r.status_code == 200 and r.get_json()["created"] == 3
    r = served.post("/events/bulk", served.operator, json={"events": good})
    assert r.get_json()["created"] == 0
    assert _count(served) == before + 3


def test_invalid_events_are_422_naming_the_field(served: Served) -> None:
    before = _count(served)
    cases = {
        "rating": _play(served, kind="rating"),
        "kind": _play(served, kind="pause"),
        "position_s": _play(served, position_s=9000, duration_s=100),
        "member_id": {k: v for k, v in _play(served).items() if k != "member_id"},
        "timestamp": _play(served, timestamp="yesterday"),
        "title_id": _play(served, title_id=1.5),  # not cut to title 1
    }
    for field, event in cases.items():
        r = served.post("/events", served.operator, json=event)
        assert r.status_code == 422, field
        assert r.mimetype == "application/problem+json"
        assert field in r.get_json()["detail"], (field, r.get_json())
    assert _count(served) == before


def test_history_shows_new_events_newest_first(served: Served) -> None:
    event = _play(served, title_id=2, timestamp="2030-01-01T00:00:00Z")
    served.post("/events", served.member, json=event)
    history = served.get(f"/members/{served.member_id}/history?limit=5", served.member).get_json()
    newest = history["events"][0]
    assert (
        newest["title_id"] == 2 and newest["kind"] == "play" and newest["timestamp"].startswith("2030-01-01")
    )
    times = [e["timestamp"] for e in history["events"]]
    assert times == sorted(times, reverse=True)


def test_the_client_address_is_stored_canonical_and_shown_and_a_bad_one_is_422(served: Served) -> None:
    r = served.post("/events", served.member, json=_play(served, client_ip="2001:DB8:0::7"))
    assert r.status_code == 201
    with served.platform.engine.connect() as conn:
        stored = conn.scalar(select(Event.client_ip).where(Event.id == r.get_json()["id"]))
    assert stored == "2001:db8::7"
    history = served.get(f"/members/{served.member_id}/history?limit=200", served.member).get_json()
    shown = {e["id"]: e["client_ip"] for e in history["events"]}
    assert shown[r.get_json()["id"]] == "2001:db8::7"  # the member sees where each play came from
    assert None in shown.values()  # events without an address say so
    before = _count(served)
    bad = [_play(served), _play(served, client_ip="10.0.0.300")]
    r = served.post("/events/bulk", served.operator, json={"events": bad})
    assert r.status_code == 422
    detail = r.get_json()["detail"]
    assert "events.1.client_ip" in detail, detail
    assert "10.0.0.300" in detail
    assert _count(served) == before  # nothing of the bulk was stored
