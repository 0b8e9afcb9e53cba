"""EASE: a closed-form linear item-item model (Steck, 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models._itemitem import ItemItemModel
from openflix.recs.models._linalg import solve_spd
from openflix.recs.models.base import POSITIVE, Bounds, register

__all__ = ["EASE", "ease_weights"]


def ease_weights(x: Any, l2: float) -> npt.NDArray[np.float32]:
    """Item-item weights ``B`` ``(n_items, n_items)`` with a zero diagonal.

    ``B = I - P / diag(P)`` with ``P = (XᵀX + l2·I)⁻¹``; ``x`` is the
    ``(n_users, n_items)`` binary interaction matrix.  Cost: one dense
    ``n_items × n_items`` single-precision Cholesky inverse.
    """
    x = x.astype(np.float32)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2
    p = solve_spd(gram)
    b = p / -np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


@register
class EASE(ItemItemModel):
    """Scores = history (binary) @ B, B from :func:`ease_weights`.

    Fold-in is exact: a member's scores depend only on their history vector.
    Memory and time grow with the square and cube of the catalog size.
    """

    name: ClassVar[str] = "ease"
    param_bounds: ClassVar[Mapping[str, Bounds]] = {"l2": POSITIVE}  # 0: the Gram matrix is singular
    param_grid: ClassVar[dict[str, Any]] = {"l2": [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]}

    def __init__(self, l2: float = 400.0) -> None:
        self.l2 = l2
        self.weights_: npt.NDArray[np.float32] | None = None

    def _fit(self, data: Interactions, history: History) -> None:
        self.weights_ = ease_weights(history.matrix(binary=True), self.l2)
