"""Request and response schemas of the API (they are also its OpenAPI 3 document)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, fields
from apiflask.fields import Boolean, DateTime, Dict, Float, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates_schema

from openflix.cdn.prefixes import normalize_ip
from openflix.errors import DataError
from openflix.store.schema import CATALOG_ID_MAX

MAX_BULK = 10_000
"""Events accepted by one bulk ingest."""


ABOVE_ZERO = {"exclusiveMinimum": 0}
"""Field metadata documenting ``Range(0, …, min_inclusive=False)``, which apispec writes as ``minimum: 0``."""

NO_NUL = Regexp(r"^[^\x00]*$", error="must not contain NUL characters")


class Text(String):
    """An input string the store can hold: no NUL characters (PostgreSQL text refuses them).

    The rule is a validator, so it is also documented (as a ``pattern``).
    """

    def __init__(self, *args: Any, validate: Any = None, **kwargs: Any) -> None:
        validators = [validate] if callable(validate) else list(validate or [])
        super().__init__(*args, validate=[NO_NUL, *validators], **kwargs)


class Integer(fields.Integer):
    """A whole number: ``2.7`` in a body is refused, not cut to 2 as marshmallow's default does
    (``3.0``, and ``"3"`` in a query string, still read as 3)."""

    def _validated(self, value: Any) -> Any:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Problem(Schema):
    """RFC 9457 problem details."""

    type = String()
    title = String()
    status = Integer()
    detail = String()
    instance = String()
    errors = Dict()


class Page(Schema):
    limit = Integer(load_default=20, validate=Range(1, 200))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))


class TitleQuery(Page):
    q = Text(validate=Length(max=200), metadata={"description": "words of the name"})
    genre = Text(validate=Length(max=100))
    year = Integer(validate=Range(1800, 2200))
    region = Text(validate=Length(max=16))


class TitleOut(Schema):
    id = Integer(required=True)
    name = String(required=True)
    year = Integer(allow_none=True)
    genres = List(String(), required=True)


class TitleDetail(TitleOut):
    regions = List(String())


class TitlePage(Schema):
    items = List(Nested(TitleOut), required=True)
    total = Integer(required=True)
    limit = Integer(required=True)
    offset = Integer(required=True)


class Availability(Schema):
    regions = List(Text(validate=Length(1, 16)), required=True, validate=Length(max=300))


class Similar(Schema):
    n = Integer(load_default=10, validate=Range(1, 100))


class SimilarOut(Schema):
    title = Nested(TitleOut, required=True)
    version = Integer(required=True)
    items = List(Nested(TitleOut), required=True)


class MemberOut(Schema):
    id = Integer(required=True)
    name = String(required=True)
    region = String(required=True)
    country = String(required=True)


def _client_ip(value: str) -> None:
    try:
        normalize_ip(value)
    except DataError as exc:
        raise ValidationError(str(exc)) from None


class EventIn(Schema):
    member_id = Integer(required=True, validate=Range(0, CATALOG_ID_MAX))
    title_id = Integer(required=True, validate=Range(0, CATALOG_ID_MAX))
    kind = String(required=True, validate=OneOf(["play", "rating"]))
    rating = Float(validate=Range(0.5, 5.0), allow_none=True)
    position_s = Integer(validate=Range(0, 10**7), allow_none=True)
    duration_s = Integer(validate=Range(1, 10**7), allow_none=True)
    timestamp = DateTime(metadata={"description": "ISO 8601; default: now"})
    device = Text(validate=Length(max=64), allow_none=True)
    source = Text(
        validate=Length(max=64),
        allow_none=True,
        metadata={"description": "home:<row id> for a play started from a recommendation row"},
    )
    idempotency_key = Text(
        validate=Length(1, 200), metadata={"description": "the same key twice stores the event once"}
    )
    client_ip = Text(
        validate=[Length(max=64), _client_ip],
        allow_none=True,
        metadata={
            "description": "the IPv4 or IPv6 address the play came from: the nightly fill counts the play "
            "at the embedded site whose ISP announces it (members without one are spread over their "
            "region's embedded sites)"
        },
    )

    @validates_schema
    def _kind_fields(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("kind") == "rating" and data.get("rating") is None:
            raise ValidationError("a rating event needs 'rating' (0.5..5)", "rating")
        if data.get("kind") == "play" and data.get("rating") is not None:
            raise ValidationError("a play event has no 'rating'; send a separate rating event", "rating")
        pos, dur = data.get("position_s"), data.get("duration_s")
        if pos is not None and dur is not None and pos > dur:
            raise ValidationError(f"position_s ({pos}) is past duration_s ({dur})", "position_s")


class EventsIn(Schema):
    events = List(Nested(EventIn), required=True, validate=Length(1, MAX_BULK))


class EventOut(Schema):
    id = Integer(required=True)
    created = Boolean(
        required=True, metadata={"description": "false when the idempotency key was seen before"}
    )


class EventsOut(Schema):
    events = List(Nested(EventOut), required=True)
    created = Integer(required=True)


class HistoryItem(Schema):
    id = Integer(required=True)
    title_id = Integer(required=True)
    kind = String(required=True)
    rating = Float(allow_none=True)
    position_s = Integer(allow_none=True)
    duration_s = Integer(allow_none=True)
    timestamp = DateTime(required=True)
    device = String(allow_none=True)
    source = String(allow_none=True)
    client_ip = String(allow_none=True, metadata={"description": "the address the play came from"})


class HistoryQuery(Schema):
    limit = Integer(load_default=100, validate=Range(1, 10_000))


class HistoryOut(Schema):
    member_id = Integer(required=True)
    events = List(Nested(HistoryItem), required=True)


class HomeQuery(Schema):
    n = Integer(load_default=10, validate=Range(1, 50))


class RowOut(Schema):
    id = String(required=True)
    title = String(required=True)
    reason = String(required=True)
    items = List(Nested(TitleOut), required=True)


class HomeOut(Schema):
    member_id = Integer(required=True)
    region = String(required=True)
    version = Integer(required=True, metadata={"description": "the model version that made the rows"})
    cell = String(allow_none=True, metadata={"description": "the member's A/B cell, when a test runs"})
    rows = List(Nested(RowOut), required=True)


class VersionOut(Schema):
    id = Integer(required=True)
    model = String(required=True)
    params = Dict(required=True)
    metrics = Dict(required=True)
    data_fingerprint = String(required=True)
    n_events = Integer(required=True)
    artifact = String(required=True)
    created_at = Integer(required=True)
    in_production = Boolean(required=True)


class VersionItem(VersionOut):
    """A version as listed by ``GET /models``.

    A class of its own: were ``VersionsOut`` to nest :class:`VersionOut`, apispec would register
    ``VersionOut`` twice (once nested, once as ``GET /models/{id}``'s output), warn, and name one
    copy ``VersionOut1``.
    """


class VersionsOut(Schema):
    items = List(Nested(VersionItem), required=True)


class CellIn(Schema):
    name = Text(required=True, validate=Length(1, 50))
    version = Integer(required=True, validate=Range(1, 2**31 - 1))
    weight = Float(
        load_default=1.0, validate=Range(min=0.0, min_inclusive=False, max=1e6), metadata=ABOVE_ZERO
    )


class TestIn(Schema):
    name = Text(required=True, validate=Length(1, 100))
    cells = List(Nested(CellIn), required=True, validate=Length(2, 20))


class CellOut(Schema):
    name = String(required=True)
    version = Integer(required=True)
    weight = Float(required=True)
    members = Integer()
    plays = Integer()


class TestOut(Schema):
    name = String(required=True)
    active = Boolean(required=True)
    created_at = Integer(required=True)
    cells = List(Nested(CellOut), required=True)


class JobIn(Schema):
    kind = String(required=True, validate=OneOf(["import", "train", "retrain", "evaluate", "fill"]))
    params = Dict(load_default=dict)


class JobOut(Schema):
    id = String(required=True)
    kind = String(required=True)
    params = Dict(required=True)
    status = String(required=True)
    attempts = Integer(required=True)
    result = Dict(allow_none=True)
    error = String(allow_none=True)
    created_at = Integer(required=True)
    started_at = Integer(allow_none=True)
    ended_at = Integer(allow_none=True)


class Health(Schema):
    status = String(required=True)
    checks = Dict()


class WhoAmI(Schema):
    token_id = Integer(required=True)
    role = String(required=True)
    member_id = Integer(allow_none=True)
