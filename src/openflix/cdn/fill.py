"""Fill planning: how many copies of each title a site keeps, and on which of its appliances.

Copies follow demand: a title's share of the site's predicted demand, times
the site's appliance count, rounded up, between one copy and one per
appliance; titles are taken in order of demand until the site's storage is
full.  Copies are placed by weighted rendezvous hashing (highest random
weight): every (title, appliance) pair gets a pseudo-random score
``-ln(u) / capacity`` from a fixed hash, and a title goes to the appliances
with the lowest scores that still have room.  So a title's appliances
depend only on the title and the appliances present: adding or removing one
of N appliances moves about 1/N of the copies, and day-over-day churn is
only what demand changed.

Sizes are in title units (every title the same size), capacities in titles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openflix.errors import DataError

__all__ = ["Manifest", "copies_for", "manifests", "place", "scores"]

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finalizer: a fixed, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def scores(
    title_ids: npt.ArrayLike, appliance_ids: npt.ArrayLike, capacities: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Rendezvous scores ``(n_titles, n_appliances)``: lower is preferred; weighted by capacity."""
    t = np.asarray(title_ids, dtype=np.uint64)[:, None]
    a = np.asarray(appliance_ids, dtype=np.uint64)[None, :]
    cap = np.asarray(capacities, dtype=np.float64)
    if cap.size and cap.min() <= 0:
        raise DataError(f"capacities must be > 0 (got {cap.min():g})")
    with np.errstate(over="ignore"):
        h = _mix(_mix(t * np.uint64(0x9E3779B97F4A7C15) & _MASK) ^ a)
    u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return -np.log(u) / cap[None, :]


def copies_for(demand: npt.ArrayLike, n_appliances: int, capacity: float) -> npt.NDArray[np.int64]:
    """Copies of each title ``(n_titles,)``: by demand share, 0 for titles that do not fit.

    Parameters
    ----------
    demand:
        Predicted plays of each title at the site (any non-negative scale).
    n_appliances:
        Appliances at the site (the most copies a title can have).
    capacity:
        Total storage of the site, in titles.
    """
    d = np.asarray(demand, dtype=np.float64)
    if d.size and not (np.isfinite(d).all() and d.min() >= 0):
        raise DataError("demand must be finite and >= 0")
    copies = np.zeros(d.size, dtype=np.int64)
    total = d.sum()
    room = int(capacity)
    if total <= 0 or n_appliances <= 0 or room <= 0:
        return copies
    wanted = np.clip(np.ceil(d / total * n_appliances), 1, n_appliances).astype(np.int64)
    wanted[d <= 0] = 0
    order = _highest(d, min(room, d.size))  # each title wants a copy at least: no more than ``room`` fit
    cumulative = np.cumsum(wanted[order])
    fits = order[cumulative <= room]
    copies[fits] = wanted[fits]
    return copies


def _highest(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest ``values``, highest first, ties in index order: the first ``k`` of
    a stable ``argsort(-values)``, found by a partition and a sort of those ``k`` only."""
    negated = -values
    if k >= values.size:
        return np.argsort(negated, kind="stable")
    kth = np.partition(negated, k - 1)[k - 1]
    chosen = negated < kth
    chosen[np.flatnonzero(negated == kth)[: k - int(chosen.sum())]] = True  # ties at the k-th: first ones
    pick = np.flatnonzero(chosen)  # in index order, so the stable sort keeps ties in index order
    return pick[np.argsort(negated[pick], kind="stable")]


_WINDOW = 1024
"""Titles :func:`place` reads ahead at first, doubled while no appliance fills up."""


def place(
    title_ids: npt.ArrayLike,
    copies: npt.ArrayLike,
    appliance_ids: Sequence[int],
    capacities: Sequence[float],
) -> dict[int, npt.NDArray[np.int64]]:
    """Which titles each appliance stores: rendezvous order, skipping appliances that are full.

    Titles are served most-copied first (ties in input order), each taking its
    most preferred appliances that still have room, so popular titles get
    their preferred appliances.  Computed a stretch of titles at a time, not
    title by title: until some appliance fills up, every title simply takes
    its first choices, so each stretch ends where the first appliance runs out
    of room, and the titles after it choose again without that appliance (a
    stretch per appliance that fills, each read ahead in windows of titles).
    Returns appliance id -> sorted title ids.
    """
    all_titles = np.asarray(title_ids, dtype=np.int64)
    all_want = np.asarray(copies, dtype=np.int64)
    if len(appliance_ids) == 0:
        return {}
    n_appliances = len(appliance_ids)
    order = np.flatnonzero(all_want > 0)  # titles with copies to place
    order = order[np.argsort(-all_want[order], kind="stable")]  # served first to last
    titles, want = all_titles[order], np.minimum(all_want[order], n_appliances)
    preference = np.argsort(scores(titles, appliance_ids, capacities), axis=1, kind="stable")
    # no appliance needs room for more than every title: a capacity beyond int64 would wrap below 0
    room = np.floor(np.minimum(np.asarray(capacities, dtype=np.float64), all_titles.size)).astype(np.int64)
    stored = np.zeros((titles.size, n_appliances), dtype=bool)  # title (served order) x appliance
    first, window = 0, _WINDOW
    while first < titles.size and (room > 0).any():
        count = min(window, titles.size - first)
        rest = slice(first, first + count)  # a window of titles: bounded work
        open_ = (room > 0)[preference[rest]]  # in each title's order of preference
        takes = open_ & (np.cumsum(open_, axis=1) <= want[rest, None])
        chosen = np.zeros(open_.shape, dtype=bool)
        np.put_along_axis(chosen, preference[rest], takes, axis=1)
        used = np.cumsum(chosen, axis=0, dtype=np.int32)
        over = (used > room).any(axis=1)
        # the first title finding an appliance full; never the first of the window, which chose
        # among appliances with room.  From there, titles choose again without the appliances the
        # stretch filled (their room is now 0)
        stop = int(np.argmax(over)) if over.any() else count
        stored[first : first + stop] = chosen[:stop]
        room -= used[stop - 1]
        first += stop
        window = 2 * window if stop == count else max(_WINDOW, 2 * stop)
    held_title, held_at = np.nonzero(stored)
    by = np.lexsort((titles[held_title], held_at))
    bounds = np.searchsorted(held_at[by], np.arange(n_appliances + 1))
    result = titles[held_title[by]]
    return {a: result[bounds[j] : bounds[j + 1]] for j, a in enumerate(appliance_ids)}


@dataclass(frozen=True)
class Manifest:
    """What one appliance fetches and deletes in its fill window."""

    appliance_id: int
    add: npt.NDArray[np.int64]
    delete: npt.NDArray[np.int64]


def manifests(before: Mapping[int, npt.ArrayLike], after: Mapping[int, npt.ArrayLike]) -> list[Manifest]:
    """Per appliance, the titles to add and to delete to go from ``before`` to ``after``."""
    out = []
    for a in sorted(set(before) | set(after)):
        old = np.asarray(before.get(a, ()), dtype=np.int64)
        new = np.asarray(after.get(a, ()), dtype=np.int64)
        out.append(Manifest(a, np.setdiff1d(new, old), np.setdiff1d(old, new)))
    return out
