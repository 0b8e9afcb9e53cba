"""Members, their history and home page, and viewing events."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apiflask import APIBlueprint
from flask import Response

from openflix.api import schemas as s
from openflix.api.auth import auth, require_member
from openflix.api.context import platform
from openflix.api.inputs import memoized_query
from openflix.cdn.prefixes import normalize_ip
from openflix.errors import ForbiddenError
from openflix.store.catalog import get_member
from openflix.store.db import translating
from openflix.store.events import EventIn, add_events, member_events
from openflix.store.tokens import Role

bp = APIBlueprint("members", __name__, tag="Members")
RESPONSES = {403: "A member token asked for another member", 404: "Unknown member"}


@bp.get("/members/<int:member_id>")
@bp.auth_required(auth)
@bp.output(s.MemberOut)
@bp.doc(responses=RESPONSES)
def member(member_id: int) -> dict[str, Any]:
    """A member's profile."""
    require_member(member_id)
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        return get_member(conn, member_id).__dict__


@bp.get("/members/<int:member_id>/history")
@bp.auth_required(auth)
@bp.input(s.HistoryQuery, location="query", arg_name="query")
@bp.output(s.HistoryOut)
@bp.doc(responses=RESPONSES)
def history(member_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """A member's newest events, newest first."""
    require_member(member_id)
    engine = platform().engine
    with translating(engine), engine.connect() as conn:
        get_member(conn, member_id)
        events = member_events(conn, member_id, limit=query["limit"]).records()
    for e in events:
        e["timestamp"] = datetime.fromtimestamp(int(e.pop("ts")), UTC)
    return {"member_id": member_id, "events": events}


@bp.get("/members/<int:member_id>/home")
@bp.auth_required(auth)
@memoized_query(bp, s.HomeQuery)
@bp.output(s.HomeOut)
@bp.doc(responses={**RESPONSES, 503: "No model is in production yet"})
def home(member_id: int, query: Mapping[str, Any]) -> Response:
    """The member's home page as rows, each with a title and a reason.

    Continue Watching, Top Picks, Because You Watched, Top 10 in the region
    today, and genre rows — only titles available in the member's region.
    A new event changes the rows at the next request.
    """
    require_member(member_id)
    page = platform().home.home(member_id, n=query["n"])
    return Response(page.body, mimetype="application/json")  # encoded once, when the page was built


def _event(body: dict[str, Any]) -> EventIn:
    ts = body.get("timestamp")
    return EventIn(
        member_id=body["member_id"],
        title_id=body["title_id"],
        kind=body["kind"],
        ts=int(ts.timestamp()) if ts is not None else int(time.time()),
        rating=body.get("rating"),
        position_s=body.get("position_s"),
        duration_s=body.get("duration_s"),
        client_ip=normalize_ip(body["client_ip"]) if body.get("client_ip") else None,
        device=body.get("device"),
        source=body.get("source"),
        idempotency_key=body.get("idempotency_key"),
    )


def _ingest(bodies: list[dict[str, Any]]) -> list[tuple[int, bool]]:
    from openflix.api.auth import principal

    who = principal()
    for i, b in enumerate(bodies):
        if who.role is Role.MEMBER and b["member_id"] != who.member_id:
            raise ForbiddenError(f"events[{i}]: a member token writes only its own member's events")
    engine = platform().engine
    with translating(engine), engine.begin() as conn:
        return add_events(conn, [_event(b) for b in bodies])


@bp.post("/events")
@bp.auth_required(auth)
@bp.input(s.EventIn, arg_name="body")
@bp.output(s.EventOut, status_code=201)
@bp.doc(
    responses={
        200: "Seen before (same idempotency key): not stored again",
        403: "Not your member",
        409: "Idempotency key reused for another event",
    }
)
def event(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Ingest one event (idempotent: the same key is stored once)."""
    [(event_id, created)] = _ingest([body])
    return {"id": event_id, "created": created}, 201 if created else 200


@bp.post("/events/bulk")
@bp.auth_required(auth)
@bp.input(s.EventsIn, arg_name="body")
@bp.output(s.EventsOut)
@bp.doc(
    responses={403: "Not your member", 409: "Idempotency key reused for another event", 413: "Body too large"}
)
def events(body: dict[str, Any]) -> dict[str, Any]:
    """Ingest up to 10,000 events in one transaction: all are stored, or none."""
    out = _ingest(body["events"])
    return {"events": [{"id": i, "created": c} for i, c in out], "created": sum(c for _, c in out)}
