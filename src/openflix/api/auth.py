"""Bearer-token authentication and the role rules of every route.

Roles: a ``member`` token reads and writes only its own member's data; an
``operator`` reads everything, ingests events and runs jobs; an ``admin``
also promotes and rolls back models and runs A/B tests.  Resolved tokens
are cached per process for :data:`CACHE_SECONDS` (a revocation takes effect
within that time).
"""

from __future__ import annotations

import time

from apiflask import HTTPError, HTTPTokenAuth
from flask import Response, current_app, g

from openflix.api.problems import problem
from openflix.errors import AuthError, ForbiddenError
from openflix.store.db import translating
from openflix.store.tokens import Principal, Role, digest, resolve_token

__all__ = ["CACHE_SECONDS", "auth", "principal", "require", "require_member"]

CACHE_SECONDS = 5.0

auth = HTTPTokenAuth(scheme="Bearer", description="An API token from `openflix tokens create`.")
_cache: dict[str, tuple[float, Principal]] = {}
MISSING = "a valid API token is required (Authorization: Bearer <token>): missing, unknown or revoked"


@auth.error_processor  # type: ignore[untyped-decorator]
def _auth_error(error: HTTPError) -> Response:
    """Say what is wrong: the bare "Unauthorized" of Flask-HTTPAuth leaves a client guessing."""
    return problem(error.status_code, MISSING if error.status_code == 401 else str(error.message))


@auth.verify_token  # type: ignore[untyped-decorator]
def _verify(token: str) -> Principal | None:
    if not token:
        return None
    key = digest(token)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    platform = current_app.extensions["openflix"]
    try:
        with translating(platform.engine), platform.engine.connect() as conn:
            who = resolve_token(conn, token)
    except AuthError:
        return None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (now, who)
    g.principal = who
    return who


def principal() -> Principal:
    """The caller of the current request."""
    who = auth.current_user
    if not isinstance(who, Principal):
        raise AuthError("a valid API token is required (Authorization: Bearer <token>)")
    return who


def require(role: Role, what: str = "this") -> Principal:
    """The caller, when their role is ``role`` or above; :class:`ForbiddenError` otherwise, saying that
    ``what`` needs it."""
    who = principal()
    if not who.can(role):
        raise ForbiddenError(f"{what} needs {_a(role.value)} token (yours is {_a(who.role.value)} token)")
    return who


def require_member(member_id: int) -> Principal:
    """The caller, when they may read or write ``member_id``'s data."""
    who = principal()
    if who.role is Role.MEMBER and who.member_id != member_id:
        raise ForbiddenError(f"a member token reads only its own member's data, not member {member_id}'s")
    return who


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an admin", "a member"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
