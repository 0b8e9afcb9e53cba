"""Most-watched titles, with older events decayed: the baseline every row falls back on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models.base import POSITIVE, Bounds, Recommender, register

__all__ = ["Popularity"]

DAY = 86_400.0


@register
class Popularity(Recommender):
    """Counts of events per title, each weighted by ``0.5 ** (age / half_life_days)``.

    The age of an event is measured from the newest event in the training data.
    ``half_life_days=None`` counts every event fully (plain popularity).
    """

    name: ClassVar[str] = "popularity"
    param_bounds: ClassVar[Mapping[str, Bounds]] = {"half_life_days": POSITIVE}
    param_grid: ClassVar[dict[str, Any]] = {"half_life_days": [None, 365.0, 90.0, 30.0, 7.0]}

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days
        self.popularity_: npt.NDArray[np.float32] | None = None

    def _fit(self, data: Interactions, history: History) -> None:
        weights = np.ones(data.nnz, dtype=np.float64)
        if self.half_life_days is not None and data.has_timestamps:
            age_days = (data.timestamps.max() - data.timestamps) / DAY
            weights = 0.5 ** (age_days / self.half_life_days)
        pop = np.bincount(data.items, weights=weights, minlength=data.n_items)
        # ties broken by plain counts so the order is stable
        counts = np.bincount(data.items, minlength=data.n_items)
        self.popularity_ = (pop + 1e-6 * counts / max(1, counts.max())).astype(np.float32)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        assert self.popularity_ is not None
        return np.broadcast_to(self.popularity_, (history.n_rows, len(self.popularity_)))

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        assert self.popularity_ is not None
        return {"popularity": self.popularity_}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self.popularity_ = state["popularity"]
