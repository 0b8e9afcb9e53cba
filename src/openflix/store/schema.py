"""The relational schema of openflix (SQLAlchemy 2 declarative; migrations in ``migrations/``).

Times are Unix seconds (``BigInteger``) so that events of any dataset (1995
to now) compare and sort cheaply; the API shows them as ISO 8601.
Ids of titles and members are the integer ids of the source data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "CATALOG_ID_MAX",
    "ISP",
    "ABTest",
    "ApiToken",
    "Appliance",
    "ApplianceModel",
    "Base",
    "CdnMeta",
    "Component",
    "Event",
    "Fill",
    "Holding",
    "JobRecord",
    "Manifest",
    "Member",
    "ModelVersion",
    "Promotion",
    "RegionPrefix",
    "Site",
    "SitePrefix",
    "Title",
    "TitleRegion",
]


CATALOG_ID_MAX = 2**62
"""Largest member or title id the store keeps (the data's own ids, 64-bit here), and so the API's and
the CLI's bound."""


class Base(DeclarativeBase):
    """Declarative base of every openflix table."""


class Title(Base):
    """A title of the catalog; ``genres`` is ``|``-separated (MovieLens style)."""

    __tablename__ = "titles"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(500))
    year: Mapped[int | None] = mapped_column(Integer, index=True)
    genres: Mapped[str] = mapped_column(String(500), default="")


class TitleRegion(Base):
    """A title is available in a region (licensing); one row per (title, region)."""

    __tablename__ = "title_regions"
    title_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(16), primary_key=True)


class Member(Base):
    """A member (account profile) with the region and country they watch from."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str] = mapped_column(String(16), index=True)
    country: Mapped[str] = mapped_column(String(2), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bumped whenever the member's events change (cached home pages compare it)."""


class Event(Base):
    """A viewing event: a play (with position and duration watched) or a rating.

    ``idempotency_key`` is unique: a retried ingest of the same event is
    recognized and never counted twice.  ``source`` names where a play started
    (``home:<row>`` for a recommendation row), ``cell`` the A/B cell the member
    was in when the recommendation was shown.
    """

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"))
    title_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("titles.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    rating: Mapped[float | None] = mapped_column(Float)
    position_s: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    ts: Mapped[int] = mapped_column(BigInteger)
    device: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    """The address the play came from (canonical text): the fill counts the play at the embedded site
    whose ISP announces it."""
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)

    __table_args__ = (
        Index("ix_events_member_ts", "member_id", "ts"),
        Index("ix_events_ts", "ts"),
    )


class ApiToken(Base):
    """An API token, stored as the SHA-256 of its secret (the secret is shown once)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class ModelVersion(Base):
    """An immutable trained model: its artifact, parameters, metrics and data fingerprint."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    n_events: Mapped[int] = mapped_column(BigInteger)
    artifact: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Promotion(Base):
    """The promotion log: the newest row names the version in production."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[int] = mapped_column(BigInteger)


class ABTest(Base):
    """An A/B test: named cells, each a model version with a weight (share of members)."""

    __tablename__ = "ab_tests"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    cells: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class JobRecord(Base):
    """A background job's status and result, the same whether it runs on RQ or in-process."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


# --- Open Connect inventory --------------------------------------------------------------------------


class CdnMeta(Base):
    """Small CDN-wide values: ``default_region``, and change counters steering snapshots compare."""

    __tablename__ = "cdn_meta"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class RegionPrefix(Base):
    """A prefix of a whole region: where a client no ISP announces is steered."""

    __tablename__ = "cdn_region_prefixes"
    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(100))


class ApplianceModel(Base):
    """An appliance model: storage in TB, throughput in Gbps, its component layout."""

    __tablename__ = "cdn_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    storage_tb: Mapped[float] = mapped_column(Float)
    throughput_gbps: Mapped[float] = mapped_column(Float)
    disks: Mapped[int] = mapped_column(Integer, default=0)
    nics: Mapped[int] = mapped_column(Integer, default=0)
    psus: Mapped[int] = mapped_column(Integer, default=0)


class ISP(Base):
    """An ISP that hosts embedded sites, by name and autonomous system number."""

    __tablename__ = "cdn_isps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    asn: Mapped[int] = mapped_column(BigInteger, unique=True)


class Site(Base):
    """A site: embedded in an ISP (``isp_id`` set) or at an internet exchange; fill window in local time."""

    __tablename__ = "cdn_sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(100), index=True)
    country: Mapped[str] = mapped_column(String(100), default="")
    latitude: Mapped[float] = mapped_column(Float, default=0.0)
    longitude: Mapped[float] = mapped_column(Float, default=0.0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    fill_window: Mapped[str] = mapped_column(String(11), default="02:00-06:00")
    isp_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("cdn_isps.id"))


class SitePrefix(Base):
    """A client prefix an ISP announces to one of its embedded sites."""

    __tablename__ = "cdn_prefixes"
    site_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cdn_sites.id", ondelete="CASCADE"), primary_key=True
    )
    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer, ForeignKey("cdn_isps.id", ondelete="CASCADE"), index=True)
    __table_args__ = (Index("ix_cdn_prefixes_prefix", "prefix"),)


class Appliance(Base):
    """An appliance, with its latest health report (load 0..1, served Gbps, Unix seconds)."""

    __tablename__ = "cdn_appliances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    site_id: Mapped[int] = mapped_column(Integer, ForeignKey("cdn_sites.id"), index=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("cdn_models.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    reported_at: Mapped[int | None] = mapped_column(BigInteger)
    load: Mapped[float | None] = mapped_column(Float)
    served_gbps: Mapped[float | None] = mapped_column(Float)


class Component(Base):
    """A hardware component of an appliance (disk, NIC, PSU) and its state: ok, degraded, failed."""

    __tablename__ = "cdn_components"
    appliance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cdn_appliances.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="ok")


class Holding(Base):
    """What an appliance stores: its title ids as little-endian int64 bytes (one row per appliance)."""

    __tablename__ = "cdn_holdings"
    appliance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cdn_appliances.id", ondelete="CASCADE"), primary_key=True
    )
    titles: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Fill(Base):
    """One planned fill of a site for a local day: where it fills from and what moved."""

    __tablename__ = "cdn_fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, ForeignKey("cdn_sites.id", ondelete="CASCADE"), index=True)
    day: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(100))
    titles: Mapped[int] = mapped_column(Integer)
    copies: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Manifest(Base):
    """One appliance's part of a fill: title ids to fetch and to delete, as JSON lists.

    ``applied_at`` is when the appliance said it applied the manifest (Unix s;
    ``None``: not yet): until then steering does not send its added titles there.
    """

    __tablename__ = "cdn_manifests"
    fill_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cdn_fills.id", ondelete="CASCADE"), primary_key=True
    )
    appliance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cdn_appliances.id", ondelete="CASCADE"), primary_key=True
    )
    add: Mapped[list[int]] = mapped_column(JSON)
    delete: Mapped[list[int]] = mapped_column(JSON)
    applied_at: Mapped[int | None] = mapped_column(BigInteger)
    placement_rev: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)
    """The ``placement`` counter's value when this manifest was written or last applied."""
