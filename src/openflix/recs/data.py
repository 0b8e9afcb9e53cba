"""The in-memory interaction table every recommender trains on.

An :class:`Interactions` holds ``nnz`` (member, title) events as parallel
arrays of contiguous indices (``int32``), with maps from those indices back to
the dataset's own ids and a lazily built member x title CSR matrix.  Memory is
about 20 bytes per event (indices, rating, timestamp) plus 8 for the CSR, so
100M ratings fit in about 3 GB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from openflix.errors import DataError, NotFoundError

__all__ = ["Interactions", "ItemInfo"]

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemInfo:
    """Titles and genres of the catalog, aligned with item indices.

    ``titles[i]`` and ``genres[i]`` describe item index ``i``; genres are
    ``|``-joined names (empty string when unknown).
    """

    titles: npt.NDArray[np.object_]
    genres: npt.NDArray[np.object_]

    def title(self, index: int) -> str:
        return str(self.titles[index])


@dataclass(frozen=True, eq=False)
class Interactions:
    """(member, title, rating, time) events with contiguous indices.

    Attributes
    ----------
    users, items:
        ``int32`` arrays of shape ``(nnz,)``: member and title indices in
        ``0..n_users-1`` and ``0..n_items-1``.
    ratings:
        ``float32`` array ``(nnz,)``: explicit rating or implicit weight (1.0
        when the source has none).
    timestamps:
        ``int64`` array ``(nnz,)``: Unix seconds (0 when the source has none).
    user_ids, item_ids:
        The dataset's own ids, index ``i`` -> id; arrays of shape
        ``(n_users,)`` and ``(n_items,)``.
    item_info:
        Titles and genres, when the dataset has them.
    """

    users: IntArray
    items: IntArray
    ratings: FloatArray
    timestamps: npt.NDArray[np.int64]
    user_ids: npt.NDArray[Any]
    item_ids: npt.NDArray[Any]
    item_info: ItemInfo | None = None
    has_ratings: bool = True
    has_timestamps: bool = True
    source: str = ""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ----------------------------------------------------------------- build
    @classmethod
    def from_ids(
        cls,
        user_ids: npt.ArrayLike,
        item_ids: npt.ArrayLike,
        ratings: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
        *,
        item_info: dict[Any, tuple[str, str]] | None = None,
        source: str = "",
    ) -> Interactions:
        """Index raw ids (any hashable dtype) into contiguous ``int32`` indices.

        Indices are assigned in sorted id order, so the same data always maps
        the same way.  ``item_info`` maps an item id to ``(title, genres)``.
        """
        u_codes, u_uniques = factorize(np.asarray(user_ids))
        i_codes, i_uniques = factorize(np.asarray(item_ids))
        nnz = len(u_codes)
        if len(i_codes) != nnz:
            raise DataError(f"user and item arrays differ in length ({nnz} != {len(i_codes)})")
        r = np.ones(nnz, dtype=np.float32) if ratings is None else np.asarray(ratings, dtype=np.float32)
        t = np.zeros(nnz, dtype=np.int64) if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        info = None
        if item_info is not None:
            uniq = np.asarray(i_uniques)
            titles = np.array([item_info.get(k, (str(k), ""))[0] for k in uniq.tolist()], dtype=object)
            genres = np.array([item_info.get(k, (str(k), ""))[1] for k in uniq.tolist()], dtype=object)
            info = ItemInfo(titles=titles, genres=genres)
        return cls(
            users=u_codes.astype(np.int32, copy=False),
            items=i_codes.astype(np.int32, copy=False),
            ratings=r,
            timestamps=t,
            user_ids=np.asarray(u_uniques),
            item_ids=np.asarray(i_uniques),
            item_info=info,
            has_ratings=ratings is not None,
            has_timestamps=timestamps is not None,
            source=source,
        )

    def subset(self, mask_or_index: npt.NDArray[Any]) -> Interactions:
        """The same index space restricted to some events (a split part)."""
        return Interactions(
            users=self.users[mask_or_index],
            items=self.items[mask_or_index],
            ratings=self.ratings[mask_or_index],
            timestamps=self.timestamps[mask_or_index],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            item_info=self.item_info,
            has_ratings=self.has_ratings,
            has_timestamps=self.has_timestamps,
            source=self.source,
        )

    def compact(self) -> Interactions:
        """The same events re-indexed over only the members and titles that occur in them."""
        u_used, users = np.unique(self.users, return_inverse=True)
        i_used, items = np.unique(self.items, return_inverse=True)
        info = None
        if self.item_info is not None:
            info = ItemInfo(self.item_info.titles[i_used], self.item_info.genres[i_used])
        return Interactions(
            users=users.astype(np.int32),
            items=items.astype(np.int32),
            ratings=self.ratings,
            timestamps=self.timestamps,
            user_ids=self.user_ids[u_used],
            item_ids=self.item_ids[i_used],
            item_info=info,
            has_ratings=self.has_ratings,
            has_timestamps=self.has_timestamps,
            source=self.source,
        )

    # ------------------------------------------------------------- shape
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        return len(self.users)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        return (
            f"Interactions({self.nnz:,} events, {self.n_users:,} members, "
            f"{self.n_items:,} titles{', ' + self.source if self.source else ''})"
        )

    # ------------------------------------------------------------- matrices
    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Member x title matrix ``(n_users, n_items)`` of ratings (duplicates: the latest wins)."""
        from openflix.recs.history import History  # history builds on this module

        return History.from_interactions(self).matrix()

    @cached_property
    def binary(self) -> sp.csr_matrix:
        """Member x title matrix ``(n_users, n_items)`` of ones where an event exists."""
        m = self.csr.copy()
        m.data = np.ones_like(m.data)
        return m

    def chronological_order(self) -> npt.NDArray[np.int64]:
        """Event order by (member, timestamp), ties kept in file order: ``(nnz,)``."""
        key = "order"
        if key not in self._cache:
            self._cache[key] = np.lexsort((self.timestamps, self.users)).astype(np.int64)
        return self._cache[key]  # type: ignore[no-any-return]

    # ------------------------------------------------------------- id maps
    def user_index(self, user_id: Any) -> int:
        """Index of a member id; :class:`NotFoundError` when unknown."""
        return _lookup(self.user_ids, user_id, "member", self._cache, "uidx")

    def item_index(self, item_id: Any) -> int:
        """Index of a title id; :class:`NotFoundError` when unknown."""
        return _lookup(self.item_ids, item_id, "title", self._cache, "iidx")

    def item_indices(self, item_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Indices of many title ids; -1 where unknown."""
        index = _index(self.item_ids, self._cache, "iidx")
        return index.get_indexer(pd.Index(_coerce_like(np.asarray(item_ids), self.item_ids)))

    def item_title(self, index: int) -> str:
        """Human-readable title of an item index (its id when titles are unknown)."""
        if self.item_info is not None:
            return self.item_info.title(index)
        return str(self.item_ids[index])


def factorize(ids: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int32], npt.NDArray[Any]]:
    """Codes ``(n,)`` int32 and sorted unique ids: ``uniques[codes] == ids``.

    Integer ids over a compact range (MovieLens, Netflix Prize) use a dense
    lookup table — no hash table, memory proportional to the range; any other
    ids go through :func:`pandas.factorize`.
    """
    if ids.dtype.kind in "iu" and len(ids):
        low, high = int(ids.min()), int(ids.max())
        if high - low <= 4 * len(ids) + 1_000_000:
            present = np.zeros(high - low + 1, dtype=bool)
            present[ids - low] = True
            lookup = np.cumsum(present, dtype=np.int32) - 1
            return lookup[ids - low], np.flatnonzero(present).astype(ids.dtype) + low
    codes, uniques = pd.factorize(ids, sort=True)
    return codes.astype(np.int32), np.asarray(uniques)


def _index(ids: npt.NDArray[Any], cache: dict[str, Any], key: str) -> pd.Index:
    if key not in cache:
        cache[key] = pd.Index(ids)
    return cache[key]  # type: ignore[no-any-return]


def _coerce_like(values: npt.NDArray[Any], ids: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Convert ids typed on a command line (strings) to the dtype of the dataset's ids."""
    if ids.dtype.kind in "iu" and values.dtype.kind in "OUS":
        out = pd.to_numeric(pd.Series(values), errors="coerce")
        return out.fillna(-(2**62)).astype(np.int64).to_numpy()
    return values


def _lookup(ids: npt.NDArray[Any], value: Any, what: str, cache: dict[str, Any], key: str) -> int:
    index = _index(ids, cache, key)
    pos = index.get_indexer(pd.Index(_coerce_like(np.asarray([value]), ids)))[0]
    if pos < 0:
        raise NotFoundError(f"unknown {what} id {value!r} (the data has {len(ids):,} {what}s)")
    return int(pos)
