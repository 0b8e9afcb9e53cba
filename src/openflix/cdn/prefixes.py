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


def normalize_ip(text: str) -> str:
    """A client address in canonical form (IPv4-mapped IPv6 becomes IPv4); :class:`DataError` if malformed."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise DataError(f"ip: {text!r} is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
