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
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ABTest",
    "ApiToken",
    "Base",
    "Event",
    "JobRecord",
    "Member",
    "ModelVersion",
    "Promotion",
    "Title",
    "TitleRegion",
]


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
