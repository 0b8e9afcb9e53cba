"""Request and response schemas of the Open Connect API (fields as in the topology document)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Dict, Float, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from openflix import timeofday
from openflix.api.schemas import ABOVE_ZERO, Integer, Page, Text
from openflix.cdn.topology import COMPONENT_KINDS, COMPONENT_STATUSES, MODEL_KINDS
from openflix.store.schema import CATALOG_ID_MAX

NAME = Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", error="letters, digits, '.', '_' or '-' (1 to 100)")
STATUSES = ("active", "draining", "offline", "failed")


class SiteIn(Schema):
    name = String(required=True, validate=NAME)
    kind = String(required=True, validate=OneOf(["embedded", "exchange"]))
    region = String(required=True, validate=NAME)
    country = Text(validate=Length(max=100))
    latitude = Float(validate=Range(-90, 90))
    longitude = Float(validate=Range(-180, 180))
    timezone = Text(validate=Length(1, 64), metadata={"description": "IANA time zone, e.g. Europe/Berlin"})
    fill_window = String(
        validate=Regexp(f"^{timeofday.WINDOW_PATTERN}$", error="HH:MM-HH:MM"),
        metadata={"description": "local time of the nightly fill, e.g. 02:00-06:00"},
    )
    isp = Text(allow_none=True, validate=Length(1, 100), metadata={"description": "embedded sites only"})


class SiteOut(Schema):
    id = Integer(required=True)
    name = String(required=True)
    kind = String(required=True)
    region = String(required=True)
    country = String(required=True)
    latitude = Float(required=True)
    longitude = Float(required=True)
    timezone = String(required=True)
    fill_window = String(required=True)
    isp = String(allow_none=True)


class SiteQuery(Page):
    kind = String(validate=OneOf(["embedded", "exchange"]))
    region = Text(validate=Length(max=100))
    isp = Text(validate=Length(max=100))


class SiteItem(SiteOut):
    """SiteOut as listed in a page (a class of its own: apispec registers each schema once)."""


class SitePage(Page):
    items = List(Nested(SiteItem), required=True)
    total = Integer(required=True)


class ISPIn(Schema):
    name = String(required=True, validate=NAME)
    asn = Integer(required=True, validate=Range(1, 4_294_967_295))


class ISPOut(ISPIn):
    id = Integer(required=True)


class ISPQuery(Page):
    name = Text(validate=Length(max=100))
    asn = Integer(validate=Range(1, 4_294_967_295))


class ISPItem(ISPOut):
    """ISPOut as listed in a page (a class of its own: apispec registers each schema once)."""


class ISPPage(Page):
    items = List(Nested(ISPItem), required=True)
    total = Integer(required=True)


class ModelIn(Schema):
    name = String(required=True, validate=NAME)
    kind = String(required=True, validate=OneOf(MODEL_KINDS))
    storage_tb = Float(required=True, validate=Range(0, 10_000, min_inclusive=False), metadata=ABOVE_ZERO)
    throughput_gbps = Float(
        required=True, validate=Range(0, 10_000, min_inclusive=False), metadata=ABOVE_ZERO
    )
    disks = Integer(validate=Range(0, 1000))
    nics = Integer(validate=Range(0, 64))
    psus = Integer(validate=Range(0, 16))


class ModelOut(ModelIn):
    id = Integer(required=True)


class ModelQuery(Page):
    name = Text(validate=Length(max=100))
    kind = String(validate=OneOf(MODEL_KINDS))


class ModelItem(ModelOut):
    """ModelOut as listed in a page (a class of its own: apispec registers each schema once)."""


class ModelPage(Page):
    items = List(Nested(ModelItem), required=True)
    total = Integer(required=True)


class ComponentIn(Schema):
    name = String(required=True, validate=NAME)
    kind = String(required=True, validate=OneOf(COMPONENT_KINDS))
    status = String(validate=OneOf(COMPONENT_STATUSES))


class NewComponent(ComponentIn):
    """ComponentIn as a request body of its own (a class of its own: apispec registers each schema
    once, and ComponentIn is already registered nested in ApplianceIn)."""


class ComponentPatch(Schema):
    kind = String(validate=OneOf(COMPONENT_KINDS))
    status = String(validate=OneOf(COMPONENT_STATUSES))


class ComponentOut(Schema):
    appliance = Integer(required=True, metadata={"description": "the appliance's id"})
    serial = String(required=True)
    site = String(required=True)
    name = String(required=True)
    kind = String(required=True)
    status = String(required=True, metadata={"description": "ok, degraded or failed"})


class ComponentItem(ComponentOut):
    """ComponentOut as listed in a page (a class of its own: apispec registers each schema once)."""


class ComponentPage(Page):
    items = List(Nested(ComponentItem), required=True)
    total = Integer(required=True)


class ApplianceComponentQuery(Page):
    kind = String(validate=OneOf(COMPONENT_KINDS))
    status = String(validate=OneOf(COMPONENT_STATUSES))


class ComponentQuery(ApplianceComponentQuery):
    appliance = Integer(validate=Range(0, 2**31 - 1), metadata={"description": "an appliance's id"})
    site = Text(validate=Length(max=100))


class ApplianceIn(Schema):
    serial = String(required=True, validate=NAME)
    site = Text(required=True, validate=Length(1, 100))
    model = Text(required=True, validate=Length(1, 100))
    hostname = Text(required=True, validate=Length(1, 253))
    status = String(validate=OneOf(STATUSES))
    components = List(Nested(ComponentIn), validate=Length(max=1000), allow_none=True)


class ApplianceOut(Schema):
    id = Integer(required=True)
    serial = String(required=True)
    site = String(required=True)
    model = String(required=True)
    hostname = String(required=True)
    status = String(required=True)
    components = List(
        Nested(ComponentIn), allow_none=True, metadata={"description": "null: the model's layout"}
    )
    health = String(required=True, metadata={"description": "ok, degraded, failed or unknown (stale)"})
    headroom = Float(required=True, metadata={"description": "share of throughput free, 0..1"})


class ApplianceQuery(Page):
    site = Text(validate=Length(max=100))
    model = Text(validate=Length(max=100))
    region = Text(validate=Length(max=100))
    status = String(validate=OneOf(STATUSES))
    health = String(validate=OneOf(["ok", "degraded", "failed", "unknown"]))


class ApplianceItem(ApplianceOut):
    """ApplianceOut as listed in a page (a class of its own: apispec registers each schema once)."""


class AppliancePage(Page):
    items = List(Nested(ApplianceItem), required=True)
    total = Integer(required=True)


class HealthIn(Schema):
    load_ = Float(
        required=True,
        data_key="load",
        attribute="load",
        validate=Range(0, 1),
        metadata={"description": "CPU/network load, 0..1"},
    )
    served_gbps = Float(required=True, validate=Range(0, 10_000))
    components = Dict(
        keys=String(validate=Length(1, 100)),
        values=String(validate=OneOf(COMPONENT_STATUSES)),
        load_default=dict,
        metadata={"description": "component name -> ok | degraded | failed; unnamed ones keep their state"},
    )


class HealthOut(Schema):
    appliance_id = Integer(required=True)
    state = String(required=True)
    reported_at = Integer(allow_none=True)
    load_ = Float(allow_none=True, data_key="load", attribute="load")
    served_gbps = Float(allow_none=True)
    headroom = Float(required=True)
    components = Dict(keys=String(), values=String(), required=True)


class PrefixesIn(Schema):
    site = Text(required=True, validate=Length(1, 100))
    prefixes = List(Text(validate=Length(1, 64)), required=True, validate=Length(1, 10_000))


class PrefixesOut(Schema):
    isp = String(required=True)
    site = String(required=True)
    prefixes = List(String(), required=True)


class SteerQuery(Schema):
    ip = Text(required=True, validate=Length(1, 64), metadata={"description": "the client's address"})
    title = Integer(required=True, validate=Range(0, CATALOG_ID_MAX))
    n = Integer(load_default=3, validate=Range(1, 20))


class SteerChoice(Schema):
    appliance_id = Integer(required=True)
    hostname = String(required=True)
    tier = String(required=True, metadata={"description": "embedded, exchange or remote"})
    url = String(required=True)


class SteerOut(Schema):
    ip = String(required=True)
    title = Integer(required=True)
    region = String(required=True)
    isp = String(allow_none=True)
    origin = Integer(required=True, metadata={"description": "1 when no appliance holds the title"})
    origin_url = String(
        allow_none=True,
        metadata={"description": "with origin 1: the origin's signed URL (for appliance 0); else null"},
    )
    expires = Integer(required=True, metadata={"description": "Unix seconds"})
    choices = List(Nested(SteerChoice), required=True)


class TopologyQuery(Schema):
    format = String(load_default="json", validate=OneOf(["json", "yaml"]))


class SyncOut(Schema):
    changes = Dict(required=True)


class FillIn(Schema):
    site = Text(validate=Length(1, 100), metadata={"description": "one site; default: every site"})


class ManifestOut(Schema):
    appliance_id = Integer(required=True)
    fill_id = Integer(allow_none=True)
    since = Integer(
        allow_none=True,
        metadata={
            "description": "the oldest fill not applied yet that add and delete include (fill_id: none)"
        },
    )
    day = String(allow_none=True)
    source = String(allow_none=True)
    add = List(Integer(), required=True)
    delete = List(Integer(), required=True)
    applied_at = Integer(
        allow_none=True,
        metadata={"description": "when the appliance said it applied this manifest (Unix s); null: not yet"},
    )
    holds = Integer(required=True)


class ManifestAppliedIn(Schema):
    fill_id = Integer(required=True, validate=Range(1, 2**31 - 1))


class ManifestAppliedOut(Schema):
    appliance_id = Integer(required=True)
    fill_id = Integer(required=True)
    applied = Integer(required=True, metadata={"description": "manifests marked applied by this call"})
    pending = Integer(required=True, metadata={"description": "manifests of the appliance still not applied"})
