"""Signed playback URLs: the steering service signs, the appliance verifies.

A playback URL names one title on one appliance for one client IP until one
instant, and carries an HMAC-SHA256 signature over exactly that::

    https://oca-17.example.net/v1/8812?t=8812&a=17&e=1717171717&k=k2&s=<43 urlsafe base64 chars>

``t`` title id, ``a`` appliance id, ``e`` expiry (Unix seconds), ``k`` key id,
``s`` signature.  The client IP is signed but not carried (URLs end up in logs),
so an appliance receiving the URL from another address computes a different
signature.  The signed message is ``openflix-cdn-url-v1 \\n key id \\n title \\n
appliance \\n client IP \\n expiry``; the IP is normalized with :mod:`ipaddress`
(lower-case, compressed IPv6; IPv4-mapped IPv6 as plain IPv4; zone ids dropped)
so that the signer and the appliance agree however the address was spelled.

The verifier accepts only the exact spelling :func:`sign_url` emits — ASCII
digits without leading zeros, each parameter once (in any order), no other
parameters, no percent-encoding, the signature compared as text rather than
decoded — so no two spellings of one URL verify, and changing any character of
the query rejects it.

Key rotation: :class:`SigningKeys` holds every key still trusted and names the
``active`` one.  Signing always uses ``active``; verification accepts any key
present.  Add the new key, make it active, and remove the old one once the
longest-lived URL signed with it has expired.

Time is never read here: callers pass ``expires`` and ``now`` in Unix seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import urlsplit

from openflix.cdn.prefixes import normalize_ip
from openflix.errors import ConfigError, DataError, OpenflixError

__all__ = [
    "ORIGIN",
    "SignatureError",
    "SignedRequest",
    "SigningKeys",
    "normalize_ip",
    "sign_url",
    "url_prefix",
    "verify_url",
]

ORIGIN = 0
"""The appliance id the origin's URLs are signed for (appliances are numbered from 1)."""
MIN_SECRET_BYTES = 32
"""Shortest secret accepted: HMAC-SHA256 gains nothing from keys beyond its 32-byte output."""

_DOMAIN = b"openflix-cdn-url-v1\n"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SIGNATURE_CHARS = 43  # urlsafe base64 of 32 bytes, without the '=' padding
_MAX_INT = 2**63 - 1  # ids and expiry fit a signed 64-bit column
_MAX_DIGITS = len(str(_MAX_INT))
_PARAMS = ("t", "a", "e", "k", "s")
_NUMBER = "(0|[1-9][0-9]{0,17})"  # up to 18 digits here; longer ones take the slow path's range check
_QUERY = re.compile(rf"t={_NUMBER}&a={_NUMBER}&e={_NUMBER}&k=([A-Za-z0-9_-]{{1,32}})&s=([A-Za-z0-9_-]{{43}})")
"""The query exactly as :func:`sign_url` writes it; anything else goes through :func:`_parse_query`."""


class SignatureError(OpenflixError, PermissionError):
    """A signed URL is malformed, altered, expired, or not meant for this client or appliance (403)."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a verified URL grants: one title from one appliance until ``expires`` (Unix seconds)."""

    title_id: int
    appliance_id: int
    expires: int
    key_id: str


@dataclass(frozen=True)
class SigningKeys:
    """The HMAC secrets trusted for playback URLs, by key id, and the one new URLs are signed with.

    Parameters
    ----------
    secrets:
        ``{key_id: secret}``; key ids match ``[A-Za-z0-9_-]{1,32}``, secrets are at
        least 32 bytes.  Every key present verifies; remove a key to retire it.
    active:
        The key id :func:`sign_url` uses; must be one of ``secrets``.

    The secrets never appear in ``repr``.  Each key's HMAC state is prepared once,
    here, so signing and verifying do not redo the key schedule.
    """

    secrets: Mapping[str, bytes]
    active: str
    _macs: Mapping[str, hmac.HMAC] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secrets, Mapping) or not self.secrets:
            raise ConfigError(
                "signing keys: expected at least one {key_id: secret} pair (got none); "
                "set e.g. 'k1:<64 hex digits>'"
            )
        secrets: dict[str, bytes] = {}
        for key_id, secret in self.secrets.items():
            _check_key_id(key_id)
            if not isinstance(secret, bytes | bytearray | memoryview):
                raise ConfigError(
                    f"signing key {key_id!r}: the secret must be bytes (got {type(secret).__name__}); "
                    "use SigningKeys.from_text for hexadecimal secrets"
                )
            secret = bytes(secret)
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"signing key {key_id!r}: the secret must be at least {MIN_SECRET_BYTES} bytes "
                    f"(got {len(secret)}); generate one with 'python -c \"import secrets; "
                    "print(secrets.token_hex(32))\"'"
                )
            secrets[key_id] = secret
        if self.active not in secrets:
            raise ConfigError(
                f"signing keys: the active key {self.active!r} is not among the keys "
                f"({', '.join(sorted(secrets))}); add it or name one of those"
            )
        object.__setattr__(self, "secrets", MappingProxyType(secrets))
        macs = {
            key_id: hmac.new(secret, _DOMAIN + key_id.encode("ascii") + b"\n", hashlib.sha256)
            for key_id, secret in secrets.items()
        }
        object.__setattr__(self, "_macs", MappingProxyType(macs))

    def __repr__(self) -> str:
        return f"SigningKeys(key_ids={tuple(sorted(self.secrets))!r}, active={self.active!r})"

    @classmethod
    def from_text(cls, text: str, *, active: str) -> SigningKeys:
        """Read keys from a setting: ``"k1:<hex secret>,k2:<hex secret>"`` (spaces around entries allowed).

        Error messages name the entry and key id but never echo a secret.
        """
        secrets: dict[str, bytes] = {}
        for number, entry in enumerate(text.split(","), start=1):
            key_id, colon, hex_secret = entry.strip().partition(":")
            if not colon:
                raise ConfigError(
                    f"signing keys: entry {number} must be KEY_ID:HEX_SECRET (got no ':'); "
                    "separate entries with ','"
                )
            _check_key_id(key_id)
            if key_id in secrets:
                raise ConfigError(f"signing keys: key id {key_id!r} appears twice; give each key its own id")
            try:
                secrets[key_id] = bytes.fromhex(hex_secret)
            except ValueError:
                raise ConfigError(
                    f"signing key {key_id!r}: the secret must be hexadecimal "
                    f"(at least {2 * MIN_SECRET_BYTES} hex digits); it is not"
                ) from None
        return cls(secrets, active)

    def _mac(self, key_id: str) -> hmac.HMAC:
        """A fresh HMAC for ``key_id`` with the domain and key id already absorbed."""
        return self._macs[key_id].copy()


def _check_key_id(key_id: object) -> None:
    if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
        raise ConfigError(
            f"signing keys: a key id must be 1..32 of A-Z a-z 0-9 _ - (got {key_id!r}); rename the key"
        )


@lru_cache(maxsize=4096)
def url_prefix(base_url: str) -> str:
    """``base_url`` without a trailing ``/``; :class:`DataError` unless it is http(s)://host[/path]."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise DataError(
            f"appliance base URL must be http(s)://host[/path] without query or fragment (got {base_url!r})"
        )
    return base_url.rstrip("/")


def _check_int(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise DataError(f"{name} must be an integer in 0..{_MAX_INT} (got {value!r})")
    try:
        number = operator.index(value)
    except TypeError:
        raise DataError(f"{name} must be an integer in 0..{_MAX_INT} (got {value!r})") from None
    if not 0 <= number <= _MAX_INT:
        raise DataError(f"{name} must be an integer in 0..{_MAX_INT} (got {number})")
    return number


def _signature(keys: SigningKeys, key_id: str, title: str, appliance: str, ip: str, expires: str) -> bytes:
    mac = keys._mac(key_id)
    mac.update(f"{title}\n{appliance}\n{ip}\n{expires}".encode("ascii"))
    return base64.urlsafe_b64encode(mac.digest())[:_SIGNATURE_CHARS]


def sign_url(
    base_url: str, title_id: int, appliance_id: int, client_ip: str, expires: int, keys: SigningKeys
) -> str:
    """A playback URL for ``title_id`` on ``appliance_id``, valid from ``client_ip`` until ``expires``.

    ``base_url`` is the appliance's root (``https://oca-17.example.net/v1``); the URL is
    ``{base_url}/{title_id}?t=…&a=…&e=…&k=…&s=…``, signed with ``keys.active``.
    ``expires`` is Unix seconds, inclusive.  Raises :class:`~openflix.errors.DataError`
    for a malformed base URL, client IP, id or expiry.
    """
    prefix = url_prefix(base_url)
    title = str(_check_int("title_id", title_id))
    appliance = str(_check_int("appliance_id", appliance_id))
    expiry = str(_check_int("expires", expires))
    key_id = keys.active
    signature = _signature(keys, key_id, title, appliance, normalize_ip(client_ip), expiry).decode("ascii")
    return f"{prefix}/{title}?t={title}&a={appliance}&e={expiry}&k={key_id}&s={signature}"


def verify_url(url: str, client_ip: str, now: int, keys: SigningKeys, *, appliance_id: int) -> SignedRequest:
    """Check a playback URL on the appliance ``appliance_id`` for a request from ``client_ip`` at ``now``.

    ``url`` may be absolute or the request target (``/v1/8812?t=…``).  Returns what
    the URL grants, or raises :class:`SignatureError` naming what failed: a missing,
    repeated, unexpected or malformed parameter; a path that names another title;
    an unknown or retired key id; a signature that does not match (the URL was
    altered, or issued to another client IP); another appliance; expiry
    (``now > expires``).  A malformed ``client_ip`` is the caller's error
    (:class:`~openflix.errors.DataError`).
    """
    path, _, query = url.partition("?")
    match = _QUERY.fullmatch(query)
    if match is not None:
        title, appliance, expiry, key_id, given = match.groups()
    else:  # reordered parameters verify too; everything else is refused with the reason
        params = _parse_query(query)
        title, appliance, expiry, key_id, given = (params[name] for name in _PARAMS)
    if not path.endswith("/" + title):
        raise SignatureError(
            f"signed URL: the path {path[-80:]!r} does not end in '/{title}', the title the signature covers"
        )
    if key_id not in keys.secrets:
        raise SignatureError(
            f"signed URL: key id {key_id!r} is unknown or retired (trusted: "
            f"{', '.join(sorted(keys.secrets))}); the client must request a new playback URL"
        )
    ip = normalize_ip(client_ip)
    expected = _signature(keys, key_id, title, appliance, ip, expiry)
    if not hmac.compare_digest(expected, given.encode("ascii")):
        raise SignatureError(
            f"signed URL: the signature does not match its parameters and client IP {ip}; "
            "the URL was altered or issued to another client"
        )
    if int(appliance) != appliance_id:
        raise SignatureError(
            f"signed URL: it was signed for appliance {appliance}, this is appliance {appliance_id}; "
            "the client must use the URL steering gave it"
        )
    expires = int(expiry)
    if now > expires:
        raise SignatureError(
            f"signed URL: it expired at {expires}, {now - expires} s before now ({now}); "
            "the client must request a new playback URL"
        )
    return SignedRequest(title_id=int(title), appliance_id=int(appliance), expires=expires, key_id=key_id)


def _parse_query(query: str) -> dict[str, str]:
    """The five parameters of a signed URL in any order, each spelled as :func:`sign_url` writes it.

    The slow path behind :data:`_QUERY`: it accepts what differs only in parameter
    order and otherwise names the first thing wrong.
    """
    params: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, equals, value = pair.partition("=")
        if name not in _PARAMS:
            raise SignatureError(
                f"signed URL: unexpected parameter {name[:40]!r}; a signed URL carries exactly t, a, e, k, s"
            )
        if name in params:
            raise SignatureError(f"signed URL: parameter {name!r} appears twice")
        if not equals:
            raise SignatureError(f"signed URL: parameter {name!r} has no value")
        params[name] = value
    missing = [name for name in _PARAMS if name not in params]
    if missing:
        raise SignatureError(
            f"signed URL: missing parameter {', '.join(repr(m) for m in missing)} "
            "(expected t, a, e, k, s); the URL was truncated or not signed"
        )
    for name in ("t", "a", "e"):
        value = params[name]
        if not (
            value.isascii()
            and value.isdigit()
            and len(value) <= _MAX_DIGITS
            and (value == "0" or value[0] != "0")
            and int(value) <= _MAX_INT
        ):
            raise SignatureError(
                f"signed URL: parameter {name!r} must be a decimal integer without leading zeros "
                f"(got {value[:40]!r})"
            )
    if _KEY_ID.fullmatch(params["k"]) is None:
        raise SignatureError(f"signed URL: parameter 'k' is not a key id (got {params['k'][:40]!r})")
    signature = params["s"]
    if len(signature) != _SIGNATURE_CHARS or not signature.isascii():
        raise SignatureError(
            f"signed URL: parameter 's' must be {_SIGNATURE_CHARS} urlsafe base64 characters "
            f"(got {len(signature)} characters)"
        )
    return params
