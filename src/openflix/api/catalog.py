"""Titles: list, search, filter, get, availability, similar titles."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from openflix.api import schemas as s
from openflix.api.auth import auth, require
from openflix.api.context import platform
from openflix.store.catalog import get_title, list_titles, set_availability, titles_by_id
from openflix.store.db import translating
from openflix.store.tokens import Role

bp = APIBlueprint("titles", __name__, tag="Titles")
RESPONSES = {404: "Unknown title"}


@bp.get("/titles")
@bp.auth_required(auth)
@bp.input(s.TitleQuery, location="query", arg_name="query")
@bp.output(s.TitlePage)
def titles(query: dict[str, Any]) -> dict[str, Any]:
    """List titles: search words of the name, filter by genre, year and region."""
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        rows, total = list_titles(
            conn,
            query=query.get("q"),
            genre=query.get("genre"),
            year=query.get("year"),
            region=query.get("region"),
            limit=query["limit"],
            offset=query["offset"],
        )
    return {
        "items": [r.__dict__ for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
    }


@bp.get("/titles/<int:title_id>")
@bp.auth_required(auth)
@bp.output(s.TitleDetail)
@bp.doc(responses=RESPONSES)
def title(title_id: int) -> dict[str, Any]:
    """One title, with the regions it is available in."""
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        return get_title(conn, title_id).__dict__


@bp.put("/titles/<int:title_id>/availability")
@bp.auth_required(auth)
@bp.input(s.Availability, arg_name="body")
@bp.output(s.TitleDetail)
@bp.doc(responses=RESPONSES)
def availability(title_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Set the regions a title is available in (operator)."""
    require(Role.OPERATOR)
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        return set_availability(conn, title_id, body["regions"]).__dict__


@bp.get("/titles/<int:title_id>/similar")
@bp.auth_required(auth)
@bp.input(s.Similar, location="query", arg_name="query")
@bp.output(s.SimilarOut)
@bp.doc(responses={**RESPONSES, 503: "No model is in production yet"})
def similar(title_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """The titles most similar to this one, by the model in production."""
    from openflix.services.personalization import index_of

    p = platform()
    with translating(p.engine), p.engine.connect() as conn:
        this = get_title(conn, title_id)
        served = p.holder.current()
        item = index_of(served.model.item_ids, title_id, "title")
        items, _ = served.model.similar_items(item, query["n"])
        ids = [int(served.model.item_ids[i]) for i in items if i >= 0]
        known = titles_by_id(conn, ids)
    return {
        "title": {k: v for k, v in this.__dict__.items() if k != "regions"},
        "version": served.version,
        "items": [known[i].__dict__ for i in ids if i in known],
    }
