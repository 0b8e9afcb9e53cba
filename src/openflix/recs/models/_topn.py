"""Row-wise top-n selection, compiled: the step that dominates top-10-for-every-member."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit, prange

__all__ = ["top_n"]


@njit(parallel=True, cache=True, nogil=True)
def _top_n_rows(
    scores: npt.NDArray[np.float32], out_idx: npt.NDArray[np.int64], out_val: npt.NDArray[np.float32]
) -> None:
    n = out_idx.shape[1]
    for r in prange(scores.shape[0]):
        vals = out_val[r]
        idx = out_idx[r]
        vals[:] = -np.inf
        idx[:] = -1
        for j in range(scores.shape[1]):
            s = scores[r, j]
            if s > vals[n - 1]:  # NaN and -inf never enter; ties keep the lower index first
                pos = n - 1
                while pos > 0 and vals[pos - 1] < s:
                    vals[pos] = vals[pos - 1]
                    idx[pos] = idx[pos - 1]
                    pos -= 1
                vals[pos] = s
                idx[pos] = j


def top_n(scores: npt.NDArray[np.floating], n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Best ``n`` columns of every row of ``scores`` ``(b, m)``: items and scores ``(b, n)``.

    Best first; equal scores keep the lower column first, so results are
    deterministic.  -inf and NaN are never returned: a row with fewer
    candidates is padded with -1 / -inf.  One pass over the scores per row,
    rows in parallel.
    """
    s = np.ascontiguousarray(scores, dtype=np.float32)
    b = s.shape[0]
    items = np.empty((b, n), dtype=np.int64)
    vals = np.empty((b, n), dtype=np.float32)
    if n > 0 and b > 0:
        if b <= FEW_ROWS:  # one member at a request: a partition beats the insertion kernel
            for r in range(b):
                items[r], vals[r] = top_n_row(s[r], n)
        else:
            _top_n_rows(s, items, vals)
    return items, vals


FEW_ROWS = 4
"""Up to this many rows, :func:`top_n` partitions each row with NumPy instead of the compiled kernel."""


def top_n_row(row: npt.NDArray[np.floating], n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Best ``n`` of one row ``(m,)``, exactly as :func:`top_n` ranks them (ties: lower index first).

    O(m) with ``np.partition``: the n-th largest value is found first, then
    every larger value and the lowest-indexed equal ones are sorted.
    """
    valid = np.flatnonzero(~np.isnan(row) & (row > -np.inf))
    if valid.size > n:
        values = row[valid]
        kth = np.partition(values, values.size - n)[values.size - n]
        above = valid[values > kth]
        equal = valid[values == kth][: n - above.size]
        valid = np.concatenate([above, equal])
    order = np.lexsort((valid, -row[valid]))
    chosen = valid[order]
    items = np.full(n, -1, dtype=np.int64)
    vals = np.full(n, -np.inf, dtype=np.float32)
    items[: chosen.size] = chosen
    vals[: chosen.size] = row[chosen]
    return items, vals
