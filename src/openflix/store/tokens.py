"""API tokens: created with a role, stored only as a SHA-256 digest, resolved per request.

Tokens are 256-bit random secrets, so a plain SHA-256 digest (no salt, no
slow hash) is enough to make a stolen table useless while keeping the lookup
a single indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, insert, select, update

from openflix.errors import AuthError, DataError, NotFoundError
from openflix.store.schema import ApiToken, Member

__all__ = ["Principal", "Role", "create_token", "digest", "resolve_token", "revoke_token"]

PREFIX = "ofx_"


class Role(StrEnum):
    """What a token may do: a member reads and writes only their own data."""

    MEMBER = "member"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role, and member (for member tokens)."""

    token_id: int
    role: Role
    member_id: int | None

    def can(self, role: Role) -> bool:
        """True when this principal's role is ``role`` or above (member < operator < admin)."""
        order = [Role.MEMBER, Role.OPERATOR, Role.ADMIN]
        return order.index(self.role) >= order.index(role)


NAME_MAX = 200
"""Longest token name (the column's width)."""


def digest(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    conn: Connection, role: str, member_id: int | None = None, name: str = ""
) -> tuple[int, str]:
    """A new token; returns its id and its secret (shown once, never stored)."""
    try:
        kind = Role(role)
    except ValueError:
        raise DataError(f"role must be one of member, operator, admin (got {role!r})") from None
    if kind is Role.MEMBER and member_id is None:
        raise DataError("a member token needs --member ID")
    if kind is not Role.MEMBER and member_id is not None:
        raise DataError(f"--member is only for member tokens, not {kind.value}")
    control = any(unicodedata.category(ch).startswith("C") for ch in name)  # control, format, unassigned
    if len(name) > NAME_MAX or control:
        raise DataError(
            f"--name: expected up to {NAME_MAX} printable characters, got {len(name)} characters"
            + (" with control characters" if control else "")
        )
    if member_id is not None and conn.scalar(select(Member.id).where(Member.id == member_id)) is None:
        raise NotFoundError(f"member {member_id} does not exist")
    secret = PREFIX + secrets.token_urlsafe(32)
    result = conn.execute(
        insert(ApiToken).values(
            name=name,
            token_hash=digest(secret),
            role=kind.value,
            member_id=member_id,
            created_at=int(time.time()),
        )
    )
    return int(result.inserted_primary_key[0]), secret  # type: ignore[index]


def resolve_token(conn: Connection, secret: str) -> Principal:
    """The principal of a token secret; :class:`AuthError` when unknown or revoked."""
    row = conn.execute(
        select(ApiToken.id, ApiToken.role, ApiToken.member_id, ApiToken.revoked_at).where(
            ApiToken.token_hash == digest(secret)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("the token is unknown or revoked; create one with `openflix tokens create`")
    return Principal(int(row.id), Role(row.role), row.member_id)


def revoke_token(conn: Connection, token_id: int) -> None:
    """Revoke a token by id."""
    done = conn.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=int(time.time()))
    )
    if done.rowcount == 0:
        raise NotFoundError(f"token {token_id} does not exist or is revoked already")
