"""The home page: rows with titles and reasons, region availability, fold-in of new events."""

from __future__ import annotations

import itertools
import time

from tests.api.conftest import Served

_keys = itertools.count()


def _home(served: Served, member_id: int, token: str) -> dict:  # type: ignore[type-arg]
    r = served.get(f"/members/{member_id}/home", token)
    assert r.status_code == 200, r.get_json()
    return r.get_json()  # type: ignore[no-any-return]


def _rows(page: dict) -> dict[str, list[int]]:  # type: ignore[type-arg]
    return {row["id"]: [t["id"] for t in row["items"]] for row in page["rows"]}


def _seen(served: Served, member_id: int) -> set[int]:
    history = served.get(f"/members/{member_id}/history?limit=10000", served.operator).get_json()
    return {e["title_id"] for e in history["events"]}


def test_rows_have_titles_reasons_and_unseen_titles(served: Served) -> None:
    page = _home(served, served.member_id, served.member)
    assert page["member_id"] == served.member_id and page["region"] in ("us", "gb") and page["version"] >= 1
    ids = [row["id"] for row in page["rows"]]
    assert ids[0] == "top-picks"
    assert (
        any(i.startswith("because:") for i in ids)
        and "top10" in ids
        and any(i.startswith("genre:") for i in ids)
    )
    seen = _seen(served, served.member_id)
    for row in page["rows"]:
        assert row["title"] and row["reason"] and 0 < len(row["items"]) <= 10
        for t in row["items"]:
            assert set(t) == {"id", "name", "year", "genres"}
        if row["id"] != "top10":
            assert not seen & {t["id"] for t in row["items"]}, row["id"]
    genre_rows = [r for r in page["rows"] if r["id"].startswith("genre:")]
    for row in genre_rows:
        genre = row["id"].split(":", 1)[1]
        assert all(genre in t["genres"] for t in row["items"])


def test_because_you_watched_names_a_recent_title(served: Served) -> None:
    page = _home(served, served.member_id, served.member)
    because = [r for r in page["rows"] if r["id"].startswith("because:")]
    anchor = int(because[0]["id"].split(":")[1])
    assert anchor in _seen(served, served.member_id)
    name = served.get(f"/titles/{anchor}", served.member).get_json()["name"]
    assert name in because[0]["title"]


def test_only_titles_available_in_the_members_region(served: Served) -> None:
    page = _home(served, served.other_id, served.other)
    region = page["region"]
    shown = sorted({t for ids in _rows(page).values() for t in ids})
    elsewhere = "gb" if region == "us" else "us"
    for title_id in shown[:5]:
        served.put(f"/titles/{title_id}/availability", served.operator, json={"regions": [elsewhere]})
    served.platform.home.forget()  # availability is cached per process for a minute
    try:
        after = {t for ids in _rows(_home(served, served.other_id, served.other)).values() for t in ids}
        assert not after & set(shown[:5])
    finally:
        for title_id in shown[:5]:
            served.put(f"/titles/{title_id}/availability", served.operator, json={"regions": ["gb", "us"]})
        served.platform.home.forget()


def test_a_new_event_changes_the_rows_at_the_next_request(served: Served) -> None:
    member, token = served.other_id, served.other
    before = _rows(_home(served, member, token))
    pick = before["top-picks"][0]
    r = served.post(
        "/events",
        token,
        json={
            "member_id": member,
            "title_id": pick,
            "kind": "rating",
            "rating": 5,
            "timestamp": "2100-01-01T00:00:00Z",
            "idempotency_key": f"home-{served.backend}-{next(_keys)}",
        },
    )
    assert r.status_code == 201
    after = _rows(_home(served, member, token))
    assert pick not in after["top-picks"]
    assert f"because:{pick}" in after
    assert after["top-picks"] != before["top-picks"]


def test_continue_watching_lists_started_unfinished_titles_newest_first(served: Served) -> None:
    member, token = served.member_id, served.member
    titles = [t["id"] for t in served.get("/titles?limit=3&offset=300", token).get_json()["items"]]
    plays = [
        (titles[0], 1200, 5400, "2101-01-01T00:00:00Z"),  # started
        (titles[1], 5300, 5400, "2101-01-02T00:00:00Z"),  # finished: not listed
        (titles[2], 300, 5400, "2101-01-03T00:00:00Z"),  # started, newest
    ]
    for title, pos, dur, ts in plays:
        event = {
            "member_id": member,
            "title_id": title,
            "kind": "play",
            "position_s": pos,
            "duration_s": dur,
            "timestamp": ts,
            "source": "home:top-picks",
        }
        assert served.post("/events", token, json=event).status_code == 201
    rows = _rows(_home(served, member, token))
    assert rows["continue-watching"] == [titles[2], titles[0]]


def test_a_member_without_history_gets_popular_titles(served: Served) -> None:
    from openflix.store.schema import Member
    from openflix.store.tokens import create_token

    with served.platform.engine.begin() as conn:
        conn.execute(
            Member.__table__.insert().values(
                id=5_000_000, name="new", region="us", country="US", created_at=0
            )
        )
        _, token = create_token(conn, "member", 5_000_000)
    page = _home(served, 5_000_000, token)
    top = page["rows"][0]
    assert top["id"] == "top-picks" and len(top["items"]) == 10 and "popular" in top["reason"]


def test_unknown_member_is_404(served: Served) -> None:
    r = served.get("/members/424242424/home", served.operator)
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_a_cached_page_is_rebuilt_once_the_regions_titles_change(served: Served) -> None:
    """No cache is dropped by hand: the region cache renews itself and the page follows."""
    home = served.platform.home
    member, token = served.other_id, served.other
    first = _home(served, member, token)
    assert _home(served, member, token) == first  # the cached page, unchanged
    title = _rows(first)["top-picks"][0]
    elsewhere = "gb" if first["region"] == "us" else "us"
    served.put(f"/titles/{title}/availability", served.operator, json={"regions": [elsewhere]})
    ttl, home.ttl = home.ttl, 0.0  # as if a minute had passed
    try:
        deadline = time.monotonic() + 10
        while title in _rows(_home(served, member, token))["top-picks"]:
            assert time.monotonic() < deadline, "the page never dropped the unavailable title"
            time.sleep(0.05)
    finally:
        home.ttl = ttl
        served.put(f"/titles/{title}/availability", served.operator, json={"regions": ["gb", "us"]})
        home.forget()


def test_a_cached_page_shows_a_titles_new_name_once_the_titles_renew(served: Served) -> None:
    """Pages splice in titles encoded once per process; a renewed name reaches the page by itself."""
    from sqlalchemy import update

    from openflix.store.schema import Title

    home = served.platform.home
    member, token = served.other_id, served.other
    first = _home(served, member, token)
    item = first["rows"][0]["items"][0]
    with served.platform.engine.begin() as conn:
        conn.execute(update(Title).where(Title.id == item["id"]).values(name=item["name"] + " (Remastered)"))
    assert _home(served, member, token) == first  # cached until the titles are renewed
    ttl, home.ttl = home.ttl, 0.0  # as if a minute had passed
    try:
        deadline = time.monotonic() + 10
        while _home(served, member, token)["rows"][0]["items"][0]["name"] != item["name"] + " (Remastered)":
            assert time.monotonic() < deadline, "the page never showed the title's new name"
            time.sleep(0.05)
    finally:
        home.ttl = ttl
        with served.platform.engine.begin() as conn:
            conn.execute(update(Title).where(Title.id == item["id"]).values(name=item["name"]))
        home.forget()


def test_n_limits_every_row_and_a_bad_n_is_422_each_time(served: Served) -> None:
    member, token = served.member_id, served.member
    for n in (3, 3, 10):  # the same query string twice: validated once, answered the same
        page = served.get(f"/members/{member}/home?n={n}", token).get_json()
        assert max(len(row["items"]) for row in page["rows"]) == n
    for query in ("n=0", "n=abc", "n=0", "n=51"):
        r = served.get(f"/members/{member}/home?{query}", token)
        assert r.status_code == 422 and r.mimetype == "application/problem+json", query
        assert "query.n" in r.get_json()["detail"], r.get_json()


def test_the_home_query_is_documented(served: Served) -> None:
    spec = served.get("/openapi.json").get_json()
    params = spec["paths"]["/members/{member_id}/home"]["get"]["parameters"]
    n = next(p for p in params if p["name"] == "n")
    assert n["in"] == "query" and n["schema"]["minimum"] == 1 and n["schema"]["maximum"] == 50
