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
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
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
"""Cells (bytes) of the bool matrix :class:`Holders` builds its bitmaps through; past that, bit by bit."""

_SLOT = np.dtype(np.uint32)
"""A slot number in :attr:`Holders.lists`: native-order unsigned 32 bits (``memoryview.cast("I")``)."""
_SLOT_BYTES = _SLOT.itemsize


def _slot_numbers(raw: bytes) -> memoryview:
    """The slot numbers packed in ``raw``, as a sequence of ints."""
    return memoryview(raw).cast("I")


@dataclass(frozen=True, eq=False)
class Holders:
    """Which appliances hold each title, over appliance slots: per title a bitmap and a list, both bytes.

    The bitmap answers "does slot ``i`` hold it" in constant time whatever the
    fleet's size (bit ``i % 8`` of byte ``i // 8``); the list walks a title's
    holders in time proportional to their number.  Both are ``bytes``, which
    the cyclic garbage collector does not track, so a fleet's million copies
    cost its full passes nothing; a frozenset of appliance ids per title made
    every full pass walk every copy (about 25 ms for 1.15 M copies, during
    which no request is answered).

    Attributes
    ----------
    slots:
        The appliance id of each slot: slot ``i`` is ``slots[i]``.
    bitmaps:
        Title id -> ``(len(slots) + 7) // 8`` bytes, bit ``i`` set when slot
        ``i`` holds the title (titles nobody holds are absent).
    lists:
        Title id -> the slot numbers holding it, in no particular order, as
        native unsigned 32-bit integers (4 bytes each); the same titles as
        ``bitmaps``.
    """

    slots: tuple[int, ...]
    bitmaps: Mapping[int, bytes]
    lists: Mapping[int, bytes]
    slot_of: dict[int, int] = field(init=False, repr=False)
    """Appliance id -> its slot."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot_of", {a: i for i, a in enumerate(self.slots)})
        if len(self.slot_of) != len(self.slots):
            raise DataError(f"an appliance has one slot at most (slots {self.slots!r})")

    @property
    def width(self) -> int:
        """Bytes of every bitmap."""
        return (len(self.slots) + 7) // 8

    @property
    def copies(self) -> int:
        """Copies held in all: (title, appliance) pairs."""
        return sum(len(numbers) for numbers in self.lists.values()) // _SLOT_BYTES

    @classmethod
    def from_slots(cls, slots: Sequence[int], held: Mapping[int, Iterable[int]]) -> Holders:
        """From the appliance id of each slot and title id -> the slot numbers holding it."""
        width = (len(slots) + 7) // 8
        bitmaps, lists = {}, {}
        for title, numbers in held.items():
            ordered = sorted(set(numbers))
            if ordered and (ordered[0] < 0 or ordered[-1] >= len(slots)):
                raise DataError(f"title {title}: slot numbers must be in 0..{len(slots) - 1} (got {ordered})")
            if ordered:
                bitmaps[title], lists[title] = _encoded(ordered, width)
        return cls(tuple(slots), bitmaps, lists)

    @classmethod
    def from_sets(cls, placement: Mapping[int, Collection[int]]) -> Holders:
        """From title id -> ids of the appliances holding it."""
        held = {t: ids for t, ids in placement.items() if len(ids)}
        appliances = np.fromiter(itertools.chain.from_iterable(held.values()), dtype=np.int64)
        if appliances.size == 0:
            return cls((), {}, {})
        slots = np.unique(appliances)
        rows = np.repeat(np.arange(len(held)), [len(ids) for ids in held.values()])
        return cls._packed(list(held), rows, slots, np.searchsorted(slots, appliances))

    @classmethod
    def from_arrays(cls, held: Mapping[int, npt.NDArray[np.int64]]) -> Holders:
        """From appliance id -> the title ids it holds."""
        slots = np.array(sorted(a for a, t in held.items() if len(t)), dtype=np.int64)
        if slots.size == 0:
            return cls((), {}, {})
        titles = np.concatenate([np.asarray(held[a], dtype=np.int64) for a in slots.tolist()])
        unique, rows = _indexed(titles)
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
        """Each title's bitmap (one row of ``(slots + 7) // 8`` bytes, little-endian bits) and list from
        each copy's row and slot: the bitmaps through a bool matrix while it is small (5 ms for 17,770
        titles x 213 slots), else straight into the bytes (no titles x slots matrix for a large fleet)."""
        width = (slots.size + 7) // 8
        if len(titles) * slots.size <= MATRIX_MAX:
            matrix = np.zeros((len(titles), slots.size), dtype=bool)
            matrix[rows, slot] = True
            packed = np.packbits(matrix, axis=1, bitorder="little")
            row, number = np.nonzero(matrix)
        else:
            packed = np.zeros((len(titles), width), dtype=np.uint8)
            np.bitwise_or.at(
                packed.reshape(-1), rows * width + (slot >> 3), np.left_shift(1, slot & 7).astype(np.uint8)
            )
            row, number = _set_bits(packed, slots.size)
        buffer = packed.tobytes()
        numbers = number.astype(_SLOT).tobytes()
        ends = np.cumsum(np.bincount(row, minlength=len(titles))) * _SLOT_BYTES
        starts = np.concatenate(([0], ends[:-1]))
        bitmaps, lists = {}, {}
        for i, (t, lo, hi) in enumerate(zip(titles, starts.tolist(), ends.tolist(), strict=True)):
            bitmaps[t] = buffer[i * width : (i + 1) * width]
            lists[t] = numbers[lo:hi]
        return cls(tuple(slots.tolist()), bitmaps, lists)

    def changed(self, changes: Mapping[int, tuple[Iterable[int], Iterable[int]]]) -> Holders:
        """A new placement: appliance id -> (title ids it gained, title ids it lost; losses first), the
        rest kept.

        Each change copies one bitmap and one list (4 bytes per holder): about
        1 µs for a title on 60 appliances, 4.5 µs on 15,000.  An appliance
        without a slot that gains titles gets a new slot at the end (every
        bitmap grows a byte when that crosses a byte boundary).
        """
        slots, slot_of = list(self.slots), dict(self.slot_of)
        bitmaps, lists, width = dict(self.bitmaps), dict(self.lists), self.width
        for appliance, (gained, lost) in changes.items():
            gained = list(gained)
            if appliance not in slot_of:
                if not gained:
                    continue
                slot_of[appliance] = len(slots)
                slots.append(appliance)
                if (len(slots) + 7) // 8 > width:
                    width += 1
                    bitmaps = {t: b + b"\0" for t, b in bitmaps.items()}
            i = slot_of[appliance]
            j, bit, number = i >> 3, 1 << (i & 7), i.to_bytes(_SLOT_BYTES, sys.byteorder)
            for t in lost:
                if (bitmap := bitmaps.get(t)) is None or not bitmap[j] & bit:
                    continue  # not held: nothing to lose
                held = lists[t]
                if len(held) == _SLOT_BYTES:
                    del bitmaps[t], lists[t]
                    continue
                at = held.find(number)
                while at % _SLOT_BYTES:  # a match across two numbers' bytes: look further
                    if at < 0:
                        raise DataError(f"title {t}: its bitmap has slot {i} but its list does not")
                    at = held.find(number, at + 1)
                bitmaps[t], lists[t] = _flipped(bitmap, j, bit), held[:at] + held[at + _SLOT_BYTES :]
            for t in gained:
                if (bitmap := bitmaps.get(t)) is None:
                    bitmaps[t], lists[t] = _flipped(bytes(width), j, bit), number
                elif not bitmap[j] & bit:
                    bitmaps[t], lists[t] = _flipped(bitmap, j, bit), lists[t] + number
        return Holders(tuple(slots), bitmaps, lists)

    def holding(self, title_id: int) -> frozenset[int]:
        """The ids of the appliances holding ``title_id``."""
        return frozenset(self.slots[i] for i in _slot_numbers(self.lists.get(title_id, b"")))

    def as_sets(self) -> dict[int, frozenset[int]]:
        """Title id -> ids of the appliances holding it (to compare or show; not for the hot path)."""
        return {t: self.holding(t) for t in self.lists}


def _indexed(values: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """``np.unique(values, return_inverse=True)`` by a table when the values are small ids (no sort:
    40 ms instead of 300 ms for 3 M copies)."""
    top = int(values.max())
    if values.min() < 0 or top >= max(4 * values.size, 1 << 20):
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, inverse
    present = np.zeros(top + 1, dtype=bool)
    present[values] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[values]


def _set_bits(
    packed: npt.NDArray[np.uint8], n_bits: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row and bit number of every set bit of ``packed`` ``(rows, bytes)`` (little-endian bits), in row
    then bit order, unpacking at most :data:`MATRIX_MAX` bits at a time."""
    step = max(1, MATRIX_MAX // max(n_bits, 1))
    rows, bits = [], []
    for lo in range(0, packed.shape[0], step):
        r, b = np.nonzero(np.unpackbits(packed[lo : lo + step], axis=1, count=n_bits, bitorder="little"))
        rows.append(r + lo)
        bits.append(b)
    return np.concatenate(rows), np.concatenate(bits)


def _flipped(bitmap: bytes, j: int, bit: int) -> bytes:
    """``bitmap`` with ``bit`` of byte ``j`` flipped."""
    out = bytearray(bitmap)
    out[j] ^= bit
    return bytes(out)


def _encoded(ordered: Sequence[int], width: int) -> tuple[bytes, bytes]:
    """The bitmap of ``width`` bytes and the list of the slot numbers ``ordered`` (ascending)."""
    bitmap = bytearray(width)
    for i in ordered:
        bitmap[i >> 3] |= 1 << (i & 7)
    return bytes(bitmap), np.asarray(ordered, dtype=_SLOT).tobytes()


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
        """Take ``holders`` as the placement: each ranked list gets its appliances' byte and bit."""
        self._holders = holders
        self._bitmaps, self._lists = holders.bitmaps, holders.lists  # one attribute lookup less each
        where = {a: (i >> 3, 1 << (i & 7)) for i, a in enumerate(holders.slots)}

        def bits(ids: Sequence[int]) -> list[tuple[int, int, int]]:
            return [(a, *where[a]) for a in ids if a in where]  # an appliance holding nothing has no slot

        self._site_bits = {site: bits(ids) for site, ids in self._site_apps.items()}
        self._exchange_bits = {region: bits(ids) for region, ids in self._exchange.items()}
        self._remote_bits = {region: bits(ids) for region, ids in self._remote.items()}

    def with_placement(self, placement: Mapping[int, Collection[int]] | Holders) -> Steering:
        """The same snapshot with another placement, without ranking again."""
        if not isinstance(placement, Holders):
            placement = Holders.from_sets(placement)
        other = copy.copy(self)
        if placement.slots == self._holders.slots:
            other._holders, other._bitmaps, other._lists = placement, placement.bitmaps, placement.lists
        else:
            other._use(placement)
        return other

    @property
    def holders(self) -> Holders:
        """The placement it steers by."""
        return self._holders

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
        bitmap = self._bitmaps.get(title_id)
        if bitmap is None:
            return Decision(ip, title_id, region, isp, ())
        chosen: list[Choice] = []
        if match is not None:
            local = [a for site in match.sites for a, j, b in self._site_bits.get(site, ()) if bitmap[j] & b]
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
                for a in self._pick(ranked, title_id, bitmap, tier, region, n - len(chosen))
            ]
        return Decision(ip, title_id, region, isp, tuple(chosen))

    def _pick(
        self,
        ranked: Sequence[tuple[int, int, int]],
        title_id: int,
        bitmap: bytes,
        tier: Tier,
        region: str,
        k: int,
    ) -> list[int]:
        """The ``k`` best of ``ranked`` (appliance, byte, bit) that hold the title (its ``bitmap``),
        scanning whichever side is shorter: the ranked list, or the title's holders."""
        held = self._lists[title_id]
        if len(held) < len(ranked) * _SLOT_BYTES:
            home, slots, mine = tier is Tier.EXCHANGE, self._holders.slots, []
            for i in _slot_numbers(held):
                a = slots[i]
                if (r := self._exchange_region.get(a)) is not None and (r == region) == home:
                    mine.append(a)
            mine.sort(key=self._rank.__getitem__)
            return mine[:k]
        out = []
        for a, j, b in ranked:
            if bitmap[j] & b:
                out.append(a)
                if len(out) == k:
                    break
        return out
