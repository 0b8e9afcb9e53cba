"""Item-kNN: cosine similarity between titles, the k nearest kept per title."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models.base import AT_LEAST_ONE, Bounds, Recommender, register

__all__ = ["ItemKNN", "cosine_neighbours"]


def cosine_neighbours(x: sp.csr_matrix, k: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Sparse ``(n_items, n_items)`` similarities: for each title (row) its ``k`` best neighbours.

    ``sim(i, j) = |U_i ∩ U_j| / (‖i‖·‖j‖ + shrink)`` over the binary ``(n_users, n_items)``
    matrix ``x``; the diagonal is zero.
    """
    xc = x.tocsc().astype(np.float32)
    co = (xc.T @ xc).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    co = co.tocoo()
    sim = co.data / (norms[co.row] * norms[co.col] + shrink + 1e-9)
    n = x.shape[1]
    # keep the k largest per row: sort by (row, -sim) and cut each run at k
    order = np.lexsort((-sim, co.row))
    rows, cols, sim = co.row[order], co.col[order], sim[order]
    starts = np.searchsorted(rows, np.arange(n))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    return sp.csr_matrix((sim[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n, n))


@register
class ItemKNN(Recommender):
    """Scores = history (binary) @ S, with S the ``k``-nearest cosine neighbourhoods."""

    name: ClassVar[str] = "itemknn"
    param_bounds: ClassVar[Mapping[str, Bounds]] = {"k": AT_LEAST_ONE}
    param_grid: ClassVar[dict[str, Any]] = {"k": [20, 50, 100, 200, 400, 800], "shrink": [0.0, 10.0, 50.0]}

    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        self.k = k
        self.shrink = shrink
        self.similarity_: sp.csr_matrix | None = None

    def _fit(self, data: Interactions, history: History) -> None:
        self.similarity_ = cosine_neighbours(history.matrix(binary=True), self.k, self.shrink)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        assert self.similarity_ is not None
        x = history.matrix(binary=True)
        return np.asarray((x @ self.similarity_).todense(), dtype=np.float32)

    def _similar(self, item: int) -> npt.NDArray[np.float32]:
        assert self.similarity_ is not None
        return np.asarray(self.similarity_[item].todense(), dtype=np.float32).ravel()

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        assert self.similarity_ is not None
        s = self.similarity_
        return {"indptr": s.indptr, "indices": s.indices, "data": s.data}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        n = len(state["indptr"]) - 1
        self.similarity_ = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=(n, n))
