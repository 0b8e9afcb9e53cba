"""Longest-prefix match of client addresses against what ISPs announce to their embedded sites.

An ISP announces its client prefixes (IPv4 and IPv6) over BGP to the
embedded sites in its network; the same prefix may go to several of that
ISP's sites.  A prefix announced by two different ISPs is a configuration
error and is refused, naming both.  Nested prefixes are fine: the longest
match wins.  Lookups go through a radix tree (pytricia), about a microsecond
each.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import pytricia

from openflix.errors import DataError

__all__ = ["Announcement", "PrefixMatch", "PrefixTable", "normalize_ip", "normalize_prefix"]


@dataclass(frozen=True)
class Announcement:
    """ISP ``isp`` announces ``prefix`` to its embedded site ``site_id``."""

    prefix: str
    isp: str
    site_id: int


@dataclass(frozen=True)
class PrefixMatch:
    """The longest announced prefix holding an address: its ISP and the sites it is announced to."""

    prefix: str
    isp: str
    sites: tuple[int, ...]


def normalize_prefix(text: str, where: str = "prefix") -> str:
    """``"10.0.0.0/8"`` in canonical form; :class:`DataError` for a malformed CIDR or host bits set."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError as exc:
        raise DataError(
            f"{where}: {text!r} is not a network in CIDR form (e.g. 203.0.113.0/24): {exc}"
        ) from None


@lru_cache(maxsize=65536)
def normalize_ip(client_ip: str) -> str:
    """The canonical text of an IP address: what steering looks up and signed URLs are bound to.

    ``'::FFFF:1.2.3.4'`` → ``'1.2.3.4'``, ``'2001:DB8:0::1'`` → ``'2001:db8::1'``,
    ``'fe80::1%eth0'`` → ``'fe80::1'``.  Raises :class:`~openflix.errors.DataError`
    for anything that is not one IPv4 or IPv6 address.
    """
    try:
        if ":" not in client_ip:
            # IPv4Address accepts only canonical dotted quads (no leading zeros since Python 3.9.5),
            # so what parses is its own canonical text.
            ipaddress.IPv4Address(client_ip)
            return client_ip
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        raise DataError(
            f"ip {client_ip!r} is not an IPv4 or IPv6 address: the client IP must be one IPv4 or IPv6 "
            "address, the peer address, not a header list"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id is not None:
            return str(ipaddress.IPv6Address(int(address)))
    return str(address)


class PrefixTable:
    """Announced prefixes, looked up by longest match."""

    def __init__(self, announcements: Iterable[Announcement]) -> None:
        owners: dict[str, tuple[str, list[int]]] = {}
        for i, a in enumerate(announcements):
            prefix = normalize_prefix(a.prefix, f"announcements[{i}].prefix")
            owner = owners.get(prefix)
            if owner is None:
                owners[prefix] = (a.isp, [a.site_id])
            elif owner[0] != a.isp:
                raise DataError(
                    f"announcements[{i}]: prefix {prefix} is announced by ISP {owner[0]!r} and by ISP "
                    f"{a.isp!r}; a prefix belongs to one ISP (nested prefixes are fine)"
                )
            elif a.site_id not in owner[1]:
                owner[1].append(a.site_id)
        self._tree = pytricia.PyTricia(128)
        for prefix, (isp, sites) in owners.items():
            self._tree[prefix] = PrefixMatch(prefix, isp, tuple(sorted(sites)))
        self._size = len(owners)

    def __len__(self) -> int:
        return self._size

    def lookup(self, ip: str) -> PrefixMatch | None:
        """The longest announced prefix holding ``ip`` (``None`` when none does)."""
        if "." in ip and ":" in ip:  # IPv4-mapped IPv6 (::ffff:a.b.c.d): look up the IPv4 address
            ip = normalize_ip(ip)
        try:
            return self._tree.get(ip)  # type: ignore[no-any-return]
        except ValueError:
            return self._tree.get(normalize_ip(ip))  # type: ignore[no-any-return]
