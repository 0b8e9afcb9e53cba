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
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from openflix.cdn.inventory import Appliance, ApplianceStatus, Site, SiteKind
from openflix.cdn.prefixes import PrefixTable
from openflix.errors import DataError

__all__ = ["Choice", "Decision", "Health", "Holders", "Steering", "Tier"]


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


MATRIX_MAX = 64 * 2**20
"""Cells (bytes) of the bool matrix :class:`Holders` builds its bits through; past that, bit by bit."""


@dataclass(frozen=True, eq=False)
class Holders:
    """Which appliances hold each title: one bitmask (a Python ``int``) per title over appliance slots.

    Ints are not tracked by the cyclic garbage collector, so a fleet's million
    copies cost its full passes nothing; a frozenset of appliance ids per
    title made every full pass walk every copy (about 25 ms for 1.15 M
    copies, during which no request is answered).

    Attributes
    ----------
    slots:
        The appliance id of each bit: bit ``i`` of a mask is ``slots[i]``.
    masks:
        Title id -> bitmask of the appliances holding it (titles nobody holds are absent).
    """

    slots: tuple[int, ...]
    masks: Mapping[int, int]
    slot_of: dict[int, int] = field(init=False, repr=False)
    """Appliance id -> its slot."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot_of", {a: i for i, a in enumerate(self.slots)})
        if len(self.slot_of) != len(self.slots):
            raise DataError(f"an appliance has one slot at most (slots {self.slots!r})")

    @classmethod
    def from_sets(cls, placement: Mapping[int, Collection[int]]) -> Holders:
        """From title id -> ids of the appliances holding it."""
        held = {t: ids for t, ids in placement.items() if len(ids)}
        appliances = np.fromiter(itertools.chain.from_iterable(held.values()), dtype=np.int64)
        if appliances.size == 0:
            return cls((), {})
        slots = np.unique(appliances)
        rows = np.repeat(np.arange(len(held)), [len(ids) for ids in held.values()])
        return cls._packed(list(held), rows, slots, np.searchsorted(slots, appliances))

    @classmethod
    def from_arrays(cls, held: Mapping[int, npt.NDArray[np.int64]]) -> Holders:
        """From appliance id -> the title ids it holds."""
        slots = np.array(sorted(a for a, t in held.items() if len(t)), dtype=np.int64)
        if slots.size == 0:
            return cls((), {})
        titles = np.concatenate([np.asarray(held[a], dtype=np.int64) for a in slots.tolist()])
        unique, rows = np.unique(titles, return_inverse=True)
        slot = np.repeat(np.arange(slots.size), [len(held[a]) for a in slots.tolist()])
        return cls._packed(unique.tolist(), rows, slots, slot)

    @classmethod
    def _packed(
        cls,
        titles: list[int],
        rows: npt.NDArray[np.intp],
        slots: npt.NDArray[np.int64],
        slot: npt.NDArray[np.intp],
    ) -> Holders:
        """Each title's bits (one row of ``(slots + 7) // 8`` bytes, little-endian) from each copy's row
        and slot: through a bool matrix while it is small (5 ms for 17,770 titles x 213 slots), else
        straight into the bytes (13 x slower, but no titles x slots matrix for a large fleet)."""
        width = (slots.size + 7) // 8
        if len(titles) * slots.size <= MATRIX_MAX:
            matrix = np.zeros((len(titles), slots.size), dtype=bool)
            matrix[rows, slot] = True
            buffer = np.packbits(matrix, axis=1, bitorder="little").tobytes()
        else:
            packed = np.zeros(len(titles) * width, dtype=np.uint8)
            np.bitwise_or.at(packed, rows * width + (slot >> 3), np.left_shift(1, slot & 7).astype(np.uint8))
            buffer = packed.tobytes()
        masks = {
            t: int.from_bytes(buffer[i * width : (i + 1) * width], "little") for i, t in enumerate(titles)
        }
        return cls(tuple(slots.tolist()), masks)

    def holding(self, title_id: int) -> frozenset[int]:
        """The ids of the appliances holding ``title_id``."""
        mask, out = self.masks.get(title_id, 0), []
        while mask:
            low = mask & -mask
            out.append(self.slots[low.bit_length() - 1])
            mask ^= low
        return frozenset(out)

    def as_sets(self) -> dict[int, frozenset[int]]:
        """Title id -> ids of the appliances holding it (to compare or show; not for the hot path)."""
        return {t: self.holding(t) for t in self.masks}


class Steering:
    """Steering decisions over one snapshot.

    Parameters
    ----------
    sites, appliances:
        The inventory.
    prefixes:
        What ISPs announce to their embedded sites.
    placement:
        Title id -> ids of the appliances holding it, or :class:`Holders`.
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
        placement: Mapping[int, Collection[int]] | Holders,
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
        self._use(placement if isinstance(placement, Holders) else Holders.from_sets(placement))

    def _use(self, holders: Holders) -> None:
        """Take ``holders`` as the placement: each ranked list gets its appliances' bits."""
        self._holders = holders
        self._masks = holders.masks  # also on its own: one attribute lookup less per decision
        bit = {a: 1 << i for i, a in enumerate(holders.slots)}

        def bits(ids: Sequence[int]) -> list[tuple[int, int]]:
            return [(a, bit[a]) for a in ids if a in bit]  # an appliance holding nothing has no slot

        self._site_bits = {site: bits(ids) for site, ids in self._site_apps.items()}
        self._exchange_bits = {region: bits(ids) for region, ids in self._exchange.items()}
        self._remote_bits = {region: bits(ids) for region, ids in self._remote.items()}

    def with_placement(self, placement: Mapping[int, Collection[int]] | Holders) -> Steering:
        """The same snapshot with another placement, without ranking again."""
        if not isinstance(placement, Holders):
            placement = Holders.from_sets(placement)
        other = copy.copy(self)
        if placement.slots == self._holders.slots:
            other._holders, other._masks = placement, placement.masks
        else:
            other._use(placement)
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
        mask = self._masks.get(title_id, 0)
        if not mask:
            return Decision(ip, title_id, region, isp, ())
        chosen: list[Choice] = []
        if match is not None:
            local = [a for site in match.sites for a, bit in self._site_bits.get(site, ()) if mask & bit]
            if len(match.sites) > 1:
                local.sort(key=self._rank.__getitem__)
            chosen += [Choice(a, self._host[a], Tier.EMBEDDED) for a in local[:n]]
        for tier, ranked in (
            (Tier.EXCHANGE, self._exchange_bits.get(region, ())),
            (Tier.REMOTE, self._remote_bits.get(region, ())),
        ):
            if len(chosen) >= n:
                break
            chosen += [
                Choice(a, self._host[a], tier)
                for a in self._pick(ranked, mask, tier, region, n - len(chosen))
            ]
        return Decision(ip, title_id, region, isp, tuple(chosen))

    def _pick(
        self, ranked: Sequence[tuple[int, int]], mask: int, tier: Tier, region: str, k: int
    ) -> list[int]:
        """The ``k`` best of ``ranked`` (appliance, bit) that hold the title (``mask``), scanning
        whichever side is shorter."""
        if mask.bit_count() < len(ranked):
            home, slots, mine = tier is Tier.EXCHANGE, self._holders.slots, []
            while mask:
                low = mask & -mask
                a = slots[low.bit_length() - 1]
                mask ^= low
                if (r := self._exchange_region.get(a)) is not None and (r == region) == home:
                    mine.append(a)
            mine.sort(key=self._rank.__getitem__)
            return mine[:k]
        out = []
        for a, bit in ranked:
            if mask & bit:
                out.append(a)
                if len(out) == k:
                    break
        return out
