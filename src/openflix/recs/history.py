"""Per-member event sequences in time order: what every model scores from.

A :class:`History` is a CSR-like layout of ``n_rows`` sequences: row ``r``
holds the events ``indptr[r]:indptr[r+1]`` of ``items``/``values``/``times``,
ordered by time (ties in file order).  Known members are rows of the training
history; a member who is new, or whose history changed since training, is a
row built from their events alone — that is fold-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from openflix.errors import DataError
from openflix.recs.data import Interactions

__all__ = ["History"]


@dataclass(frozen=True, eq=False)
class History:
    """Chronological event sequences of ``n_rows`` members over ``n_items`` titles.

    Attributes
    ----------
    indptr:
        ``int64`` ``(n_rows + 1,)`` row boundaries.
    items:
        ``int32`` ``(nnz,)`` title indices.
    values:
        ``float32`` ``(nnz,)`` ratings or weights.
    times:
        ``int64`` ``(nnz,)`` Unix seconds.
    n_items:
        Size of the catalog the indices refer to.
    rated:
        Whether ``values`` are ratings (False: plays or clicks, weight 1).
    """

    indptr: npt.NDArray[np.int64]
    items: npt.NDArray[np.int32]
    values: npt.NDArray[np.float32]
    times: npt.NDArray[np.int64]
    n_items: int
    rated: bool = True

    @classmethod
    def from_interactions(cls, data: Interactions) -> History:
        """One row per member index ``0..n_users-1``, events in time order."""
        order = data.chronological_order()
        counts = np.bincount(data.users, minlength=data.n_users)
        indptr = np.zeros(data.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr=indptr,
            items=data.items[order],
            values=data.ratings[order],
            times=data.timestamps[order],
            n_items=data.n_items,
            rated=data.has_ratings,
        )

    @classmethod
    def from_items(
        cls,
        items: npt.ArrayLike,
        n_items: int,
        *,
        times: npt.ArrayLike | None = None,
        values: npt.ArrayLike | None = None,
    ) -> History:
        """A single row from a member's events (fold-in); missing times keep the given order."""
        it = np.asarray(items, dtype=np.int64).ravel()
        if it.size and (it.min() < 0 or it.max() >= n_items):
            raise DataError(f"item indices must be in 0..{n_items - 1}")
        n = len(it)
        t = np.arange(n, dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        v = np.ones(n, dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
        if len(t) != n or len(v) != n:
            raise DataError("items, times and values of a history must have the same length")
        order = np.argsort(t, kind="stable")
        return cls(
            indptr=np.array([0, n], dtype=np.int64),
            items=it[order].astype(np.int32),
            values=v[order],
            times=t[order],
            n_items=n_items,
            rated=values is not None,
        )

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.indptr)

    def row_ids(self) -> npt.NDArray[np.int64]:
        """Row of every event ``(nnz,)``."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), self.lengths)

    def rows(self, index: npt.ArrayLike) -> History:
        """The sub-history of the given rows, in that order."""
        idx = np.asarray(index, dtype=np.int64).ravel()
        starts = self.indptr[idx]
        lengths = self.indptr[idx + 1] - starts
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
        return History(
            indptr=indptr,
            items=self.items[pos],
            values=self.values[pos],
            times=self.times[pos],
            n_items=self.n_items,
            rated=self.rated,
        )

    def matrix(self, *, binary: bool = False) -> sp.csr_matrix:
        """``(n_rows, n_items)`` float32 CSR; for a repeated title the latest value wins."""
        rows = self.row_ids()
        keys = rows * self.n_items + self.items
        _, last_rev = np.unique(keys[::-1], return_index=True)
        keep = len(keys) - 1 - last_rev
        data = np.ones(len(keep), np.float32) if binary else self.values[keep]
        m = sp.csr_matrix(
            (data, (rows[keep], self.items[keep])),
            shape=(self.n_rows, self.n_items),
            dtype=np.float32,
        )
        m.sort_indices()
        return m

    def last_times(self) -> npt.NDArray[np.int64]:
        """Time of each row's latest event ``(n_rows,)``; 0 for an empty row."""
        out = np.zeros(self.n_rows, dtype=np.int64)
        nonempty = self.lengths > 0
        out[nonempty] = self.times[self.indptr[1:][nonempty] - 1]
        return out
