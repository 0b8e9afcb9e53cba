"""The top 10 row of a region when the store's newest events are years after the rest (a module of its own:
its event moves the store's "today" for every test that shares the served platform)."""

from __future__ import annotations

from tests.api.conftest import Served


def test_one_event_of_today_after_years_of_old_data_still_shows_ten_titles(served: Served) -> None:
    # latest-small ends in 2016; a play posted today moved "today" to the present, and the widening
    # (x7 from a day) stopped at 400 days, which held that one play: the row showed 1 title
    event = {
        "member_id": served.member_id, "title_id": 1, "kind": "play",
        "position_s": 60, "duration_s": 5400, "timestamp": "2026-11-30T20:00:00Z", "device": "tv",
        "idempotency_key": f"top10-{served.backend}",
    }  # fmt: skip
    assert served.post("/events", served.member, json=event).status_code == 201
    served.platform.home.forget()  # as the renewal a minute later would
    page = served.get(f"/members/{served.member_id}/home", served.member).get_json()
    top10 = next(row for row in page["rows"] if row["id"] == "top10")
    assert len(top10["items"]) == 10, top10
