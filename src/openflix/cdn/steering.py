"""Steering: for one playback, the ranked appliances that should serve it — a pure function of a snapshot.

Preference, in tiers:

1. ``embedded``: appliances at the embedded sites the client's ISP announces
   the client's prefix to (longest match);
2. ``exchange``: appliances at exchange sites of the client's region;
3. ``remote``: appliances at exchange sites of other regions.

Only active, healthy appliances that hold the title are candidates; within
a tier they are ranked by load headroom (share of throughput free, highest
first), ties broken by appliance id, so equal inputs give equal answers.  A
title no candidate holds goes to ``origin``.  A client address no ISP
announces is placed in its region through ``regions`` (prefixes of whole
regions), or else in ``default_region``.

A :class:`Steering` is built once per snapshot of inventory, health and
placement (a few milliseconds for a thousand appliances); deciding is then
a radix-tree lookup and a scan of the few candidates.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from openflix.cdn.inventory import Appliance, ApplianceStatus, Site, SiteKind
from openflix.cdn.prefixes import PrefixTable

__all__ = ["Choice", "Decision", "Health", "Steering", "Tier"]


class Tier(StrEnum):
    """How close a chosen appliance is to the client."""

    EMBEDDED = "embedded"
    EXCHANGE = "exchange"
    REMOTE = "remote"


@dataclass(frozen=True)
class Health:
    """An appliance's last report: healthy (its worst component is) and its load headroom in 0..1."""

    healthy: bool
    headroom: float


@dataclass(frozen=True)
class Choice:
    """One ranked answer: the appliance, its hostname and tier."""

    appliance_id: int
    hostname: str
    tier: Tier


@dataclass(frozen=True)
class Decision:
    """Where one playback goes: up to ``n`` choices best first, or the origin when none holds the title."""

    ip: str
    title_id: int
    region: str
    isp: str | None
    choices: tuple[Choice, ...]

    @property
    def origin(self) -> bool:
        """True when no appliance can serve the title: the client goes to the origin."""
        return not self.choices


class Steering:
    """Steering decisions over one snapshot.

    Parameters
    ----------
    sites, appliances:
        The inventory.
    prefixes:
        What ISPs announce to their embedded sites.
    placement:
        Title id -> ids of the appliances holding it.
    health:
        Appliance id -> its latest fresh report; an appliance without one
        (never reported, or stale) is not steered to.
    regions:
        Optional prefixes of whole regions (``isp`` holds the region name) for
        clients no ISP announces.
    default_region:
        Region of a client placed nowhere else.
    """

    def __init__(
        self,
        sites: Sequence[Site],
        appliances: Sequence[Appliance],
        prefixes: PrefixTable,
        placement: Mapping[int, Collection[int]],
        health: Mapping[int, Health],
        *,
        regions: PrefixTable | None = None,
        default_region: str = "",
    ) -> None:
        self.prefixes = prefixes
        self.regions = regions
        site_of = {s.id: s for s in sites}
        self._site_region = {s.id: s.region for s in sites}
        self.default_region = default_region or (sites[0].region if sites else "")
        usable = [
            a
            for a in appliances
            if a.status is ApplianceStatus.ACTIVE and (h := health.get(a.id)) is not None and h.healthy
        ]
        usable.sort(key=lambda a: (-health[a.id].headroom, a.id))
        self._rank = {a.id: i for i, a in enumerate(usable)}
        self._host = {a.id: a.hostname for a in usable}
        self._site_apps: dict[int, list[int]] = {}
        self._exchange: dict[str, list[int]] = {}
        for a in usable:  # in rank order, so every list below is ranked
            site = site_of.get(a.site_id)
            if site is None:
                continue
            if site.kind is SiteKind.EMBEDDED:
                self._site_apps.setdefault(site.id, []).append(a.id)
            else:
                self._exchange.setdefault(site.region, []).append(a.id)
        self._exchange_region = {a: r for r, ids in self._exchange.items() for a in ids}
        self._remote = {
            region: sorted(
                (a for r, ids in self._exchange.items() if r != region for a in ids),
                key=self._rank.__getitem__,
            )
            for region in {*self._exchange, self.default_region, *self._site_region.values()}
        }
        # Holders are kept as given (unusable appliances included): every lookup below intersects
        # them with the usable ones, so a snapshot rebuilt for a health change reuses the placement.
        self._holders = {
            title: ids if isinstance(ids, frozenset) else frozenset(ids) for title, ids in placement.items()
        }

    def with_placement(self, placement: Mapping[int, frozenset[int]]) -> Steering:
        """The same snapshot with another placement (title id -> holders), without ranking again."""
        other = copy.copy(self)
        other._holders = dict(placement)
        return other

    @property
    def n_appliances(self) -> int:
        """Appliances steering may choose from (active, healthy, reporting)."""
        return len(self._rank)

    def decide(self, ip: str, title_id: int, n: int = 3) -> Decision:
        """Up to ``n`` appliances for ``ip`` to play ``title_id`` from, best first."""
        match = self.prefixes.lookup(ip)
        if match is not None:
            region = self._site_region.get(match.sites[0], self.default_region)
            isp: str | None = match.isp
        else:
            isp = None
            where = self.regions.lookup(ip) if self.regions is not None else None
            region = where.isp if where is not None else self.default_region
        holders = self._holders.get(title_id)
        if not holders:
            return Decision(ip, title_id, region, isp, ())
        chosen: list[Choice] = []
        if match is not None:
            local = [a for site in match.sites for a in self._site_apps.get(site, ()) if a in holders]
            if len(match.sites) > 1:
                local.sort(key=self._rank.__getitem__)
            chosen += [Choice(a, self._host[a], Tier.EMBEDDED) for a in local[:n]]
        for tier, ranked in (
            (Tier.EXCHANGE, self._exchange.get(region, ())),
            (Tier.REMOTE, self._remote.get(region, ())),
        ):
            if len(chosen) >= n:
                break
            chosen += [
                Choice(a, self._host[a], tier)
                for a in self._pick(ranked, holders, tier, region, n - len(chosen))
            ]
        return Decision(ip, title_id, region, isp, tuple(chosen))

    def _pick(
        self, ranked: Sequence[int], holders: frozenset[int], tier: Tier, region: str, k: int
    ) -> list[int]:
        """The ``k`` best of ``ranked`` that hold the title, scanning whichever side is shorter."""
        if len(holders) < len(ranked):
            home = tier is Tier.EXCHANGE
            mine = [
                a
                for a in holders
                if (r := self._exchange_region.get(a)) is not None and (r == region) == home
            ]
            mine.sort(key=self._rank.__getitem__)
            return mine[:k]
        out = []
        for a in ranked:
            if a in holders:
                out.append(a)
                if len(out) == k:
                    break
        return out
