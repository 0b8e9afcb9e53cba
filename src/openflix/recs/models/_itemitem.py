"""What the dense item-item models share: one ``(n_items, n_items)`` weight matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from openflix.recs.history import History
from openflix.recs.models.base import Recommender

__all__ = ["ItemItemModel"]


class ItemItemModel(Recommender):
    """A model scoring ``history @ W``; ``W[i, j]`` says how much title ``i`` calls for title ``j``.

    Subclasses set ``weights_`` in ``_fit``; scoring defaults to the binary
    history.  Similar titles are those with the largest ``W[i, j] + W[j, i]``.
    """

    weights_: npt.NDArray[np.float32] | None = None

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        assert self.weights_ is not None
        return np.asarray(history.matrix(binary=True) @ self.weights_, dtype=np.float32)

    def _similar(self, item: int) -> npt.NDArray[np.float32]:
        assert self.weights_ is not None
        return np.asarray(self.weights_[item] + self.weights_[:, item], dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        assert self.weights_ is not None
        return {"weights": self.weights_}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self.weights_ = state["weights"]
