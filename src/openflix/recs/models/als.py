"""Implicit-feedback ALS (Hu, Koren & Volinsky, 2008) through the ``implicit`` library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models.base import AT_LEAST_ONE, POSITIVE, Bounds, Recommender, register

__all__ = ["ALS"]


def _implicit_als(**kwargs: Any) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads when built
        return AlternatingLeastSquares(**kwargs)


@register
class ALS(Recommender):
    """Matrix factorization of binary preferences with confidence ``1 + alpha``.

    The factorization is ``implicit``'s (conjugate-gradient ALS); fold-in
    recomputes a member's factors from their history against the fixed item
    factors (``implicit``'s ``recalculate_user``).
    """

    name: ClassVar[str] = "als"
    param_bounds: ClassVar[Mapping[str, Bounds]] = {
        "factors": AT_LEAST_ONE, "iterations": AT_LEAST_ONE, "alpha": POSITIVE,
    }  # fmt: skip
    param_grid: ClassVar[dict[str, Any]] = {
        "factors": [16, 32, 64, 128],
        "regularization": [0.01, 0.1, 1.0, 10.0],
        "alpha": [0.5, 1.0, 5.0, 20.0],
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 5.0,
        iterations: int = 15,
        random_state: int = 42,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self._model: Any = None

    def _new(self) -> Any:
        return _implicit_als(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=0,
        )

    def _fit(self, data: Interactions, history: History) -> None:
        self._model = self._new()
        with threadpool_limits(1, "blas"):  # implicit threads itself; BLAS threads would fight it
            self._model.fit(history.matrix(binary=True), show_progress=False)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        m = self._model
        factors = np.empty((history.n_rows, m.factors), dtype=np.float32)
        known = users >= 0
        if known.any():
            factors[known] = m.user_factors[users[known]]
        if (~known).any():
            rows = np.flatnonzero(~known)
            x = history.rows(rows).matrix(binary=True)
            with threadpool_limits(1, "blas"):
                factors[~known] = m.recalculate_user(np.arange(len(rows)), x)
        return np.asarray(factors @ m.item_factors.T, dtype=np.float32)

    def _similar(self, item: int) -> npt.NDArray[np.float32]:
        f = self._model.item_factors
        norms = np.linalg.norm(f, axis=1) + 1e-9
        return np.asarray((f @ f[item]) / (norms * norms[item]), dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"user_factors": self._model.user_factors, "item_factors": self._model.item_factors}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self._model = self._new()
        self._model.user_factors = state["user_factors"]
        self._model.item_factors = state["item_factors"]
