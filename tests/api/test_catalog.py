"""Titles: list, search, filter by genre/year/region, get, availability, similar."""

from __future__ import annotations

from tests.api.conftest import Served


def test_list_pages_through_every_title(served: Served) -> None:
    first = served.get("/titles?limit=150", served.member).get_json()
    assert first["total"] == 400 and len(first["items"]) == 150
    rest = served.get("/titles?limit=200&offset=150", served.member).get_json()["items"]
    rest += served.get("/titles?limit=200&offset=350", served.member).get_json()["items"]
    ids = [t["id"] for t in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 400 and ids == sorted(ids)


def test_search_matches_words_of_the_name_case_insensitively(served: Served) -> None:
    items = served.get("/titles?q=STAR%20wars", served.member).get_json()["items"]
    assert items and all("star" in t["name"].lower() and "wars" in t["name"].lower() for t in items)


def test_filters_by_genre_exactly_and_by_year(served: Served) -> None:
    page = served.get("/titles?genre=Sci-Fi&limit=200", served.member).get_json()
    assert page["total"] > 0 and all("Sci-Fi" in t["genres"] for t in page["items"])
    assert served.get("/titles?genre=Sci", served.member).get_json()["total"] == 0
    items = served.get("/titles?year=1995&limit=200", served.member).get_json()["items"]
    assert items and {t["year"] for t in items} == {1995}


def test_get_splits_name_and_year_and_lists_regions(served: Served) -> None:
    t = served.get("/titles/1", served.member).get_json()
    assert t == {
        "id": 1,
        "name": "Toy Story",
        "year": 1995,
        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        "regions": ["gb", "us"],
    }
    r = served.get("/titles/999999999", served.member)
    assert r.status_code == 404 and "999999999" in r.get_json()["detail"]


def test_availability_changes_the_region_filter(served: Served) -> None:
    r = served.put("/titles/2/availability", served.operator, json={"regions": ["us"]})
    assert r.status_code == 200 and r.get_json()["regions"] == ["us"]
    gb = served.get("/titles?region=gb&limit=200&offset=0", served.member).get_json()
    assert 2 not in [t["id"] for t in gb["items"]]
    assert gb["total"] == 399
    served.put("/titles/2/availability", served.operator, json={"regions": ["gb", "us"]})


def test_similar_titles_come_from_the_production_model(served: Served) -> None:
    body = served.get("/titles/1/similar?n=5", served.member).get_json()
    assert body["title"]["id"] == 1 and len(body["items"]) == 5
    assert 1 not in [t["id"] for t in body["items"]]
    assert body["version"] >= 1
