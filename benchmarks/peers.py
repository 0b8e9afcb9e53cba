"""The libraries openflix is compared with, wrapped in openflix's model contract.

Wrapping the peers lets one harness split, tune (on validation only), fit and
measure every model the same way.  Peers come from the ``peers`` extra:
``implicit`` (ALS, BPR, item-kNN cosine and BM25) and ``scikit-surprise``
(SVD, SVD++, KNNBaseline, BaselineOnly).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import threadpool_limits

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models import ALS
from openflix.recs.models.base import RatingModel, Recommender

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
warnings.filterwarnings("ignore", message="Method expects CSR input")  # implicit's own transposes


class ImplicitMF(Recommender):
    """implicit's ALS or BPR; known members use their learned factors."""

    name: ClassVar[str] = "implicit-als"
    algorithm: ClassVar[str] = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        learning_rate: float = 0.01,
        iterations: int = 15,
        random_state: int = 42,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.iterations = iterations
        self.random_state = random_state
        self._model: Any = None

    def _fit(self, data: Interactions, history: History) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        limits = threadpool_limits(1, "blas")
        if self.algorithm == "als":
            self._model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
            )
        else:
            self._model = BayesianPersonalizedRanking(
                factors=self.factors,
                regularization=self.regularization,
                learning_rate=self.learning_rate,
                iterations=self.iterations,
                random_state=self.random_state,
            )
        with limits:
            self._model.fit(history.matrix(binary=True), show_progress=False)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.asarray(self._model.user_factors[users] @ self._model.item_factors.T, dtype=np.float32)


class ImplicitALS(ImplicitMF):
    name = "implicit-als"
    algorithm = "als"
    param_grid: ClassVar[dict[str, Any]] = dict(ALS.param_grid)  # the same grid as openflix's wrapper


class ImplicitBPR(ImplicitMF):
    name = "implicit-bpr"
    algorithm = "bpr"
    param_grid: ClassVar[dict[str, Any]] = {
        "factors": [32, 64, 128],
        "learning_rate": [0.003, 0.01, 0.05],
        "regularization": [0.0003, 0.001, 0.01],
        "iterations": [100],
    }


class ImplicitKNN(Recommender):
    """implicit's item-item cosine or BM25 recommender."""

    name: ClassVar[str] = "implicit-cosine"
    weighting: ClassVar[str] = "cosine"

    def __init__(self, K: int = 20, K1: float = 1.2, B: float = 0.75) -> None:
        self.K = K
        self.K1 = K1
        self.B = B
        self._model: Any = None

    def _fit(self, data: Interactions, history: History) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        if self.weighting == "bm25":
            self._model = BM25Recommender(K=self.K, K1=self.K1, B=self.B)
        else:
            self._model = CosineRecommender(K=self.K)
        self._model.fit(history.matrix(binary=True), show_progress=False)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        x = history.matrix(binary=True)
        return np.asarray((x @ self._model.similarity).todense(), dtype=np.float32)


class ImplicitCosine(ImplicitKNN):
    name = "implicit-cosine"
    weighting = "cosine"
    param_grid: ClassVar[dict[str, Any]] = {"K": [10, 20, 50, 100, 200, 400, 800]}


class ImplicitBM25(ImplicitKNN):
    name = "implicit-bm25"
    weighting = "bm25"
    param_grid: ClassVar[dict[str, Any]] = {
        "K": [20, 50, 100, 200, 400, 800],
        "K1": [0.3, 0.6, 1.2],
        "B": [0.25, 0.5, 0.75, 1.0],
    }


class SurpriseModel(RatingModel):
    """A scikit-surprise algorithm; ranking scores are its predicted ratings (vectorized where possible)."""

    name: ClassVar[str] = "surprise-svd"
    algorithm: ClassVar[str] = "SVD"

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 20,
        lr_all: float = 0.005,
        reg_all: float = 0.02,
        k: int = 40,
        random_state: int = 42,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.k = k
        self.random_state = random_state
        self._algo: Any = None

    def _make(self) -> Any:
        import surprise

        if self.algorithm == "SVD":
            return surprise.SVD(
                n_factors=self.n_factors,
                n_epochs=self.n_epochs,
                lr_all=self.lr_all,
                reg_all=self.reg_all,
                random_state=self.random_state,
            )
        if self.algorithm == "SVDpp":
            return surprise.SVDpp(
                n_factors=self.n_factors,
                n_epochs=self.n_epochs,
                lr_all=self.lr_all,
                reg_all=self.reg_all,
                random_state=self.random_state,
                cache_ratings=True,
            )
        if self.algorithm == "KNNBaseline":
            return surprise.KNNBaseline(
                k=self.k, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
            )
        return surprise.BaselineOnly(verbose=False)

    def _fit(self, data: Interactions, history: History) -> None:
        import surprise

        frame = pd.DataFrame({"u": data.users, "i": data.items, "r": data.ratings})
        reader = surprise.Reader(rating_scale=(float(data.ratings.min()), float(data.ratings.max())))
        self._trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        self._algo = self._make()
        self._algo.fit(self._trainset)
        self._n_items = data.n_items

    def _inner(self, raw: npt.NDArray[np.int64], kind: str) -> npt.NDArray[np.int64]:
        ts = self._trainset
        table = ts._raw2inner_id_users if kind == "u" else ts._raw2inner_id_items
        return np.array([table.get(int(x), -1) for x in raw], dtype=np.int64)

    def predict(self, users: npt.ArrayLike, items: npt.ArrayLike) -> npt.NDArray[np.float32]:
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        est = [self._algo.predict(int(a), int(b)).est for a, b in zip(u, i, strict=True)]
        return np.asarray(est, dtype=np.float32)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        algo, ts = self._algo, self._trainset
        iu = self._inner(users, "u")
        ii = self._inner(np.arange(self._n_items), "i")
        out = np.full((len(users), self._n_items), ts.global_mean, dtype=np.float32)
        known_i = ii >= 0
        if self.algorithm in ("SVD", "SVDpp"):
            bu = np.where(iu >= 0, algo.bu[np.maximum(iu, 0)], 0.0)
            pu = algo.pu[np.maximum(iu, 0)] * (iu >= 0)[:, None]
            if self.algorithm == "SVDpp":  # the implicit term of SVD++: |N(u)|^-1/2 sum of y_j
                y = np.zeros((self._n_items, algo.yj.shape[1]))
                y[known_i] = algo.yj[ii[known_i]]
                x = history.matrix(binary=True)
                n = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1)
                pu = pu + (x @ y) / np.sqrt(n)[:, None] * (iu >= 0)[:, None]
            bi = algo.bi[ii[known_i]]
            qi = algo.qi[ii[known_i]]
            out[:, known_i] += bu[:, None] + bi[None, :] + pu @ qi.T
        else:  # baseline part only for ranking (KNN's neighbourhood term is per pair)
            bu, bi = algo.compute_baselines()
            b_u = np.where(iu >= 0, bu[np.maximum(iu, 0)], 0.0)
            out[:, known_i] += b_u[:, None] + bi[ii[known_i]][None, :]
        return out


def surprise_class(name: str, algorithm: str, grid: dict[str, Any]) -> type[SurpriseModel]:
    return type(name, (SurpriseModel,), {"name": name, "algorithm": algorithm, "param_grid": grid})


SurpriseSVD = surprise_class(
    "surprise-svd", "SVD", {"n_factors": [50, 100], "reg_all": [0.02, 0.05, 0.1], "lr_all": [0.005, 0.01]}
)
SurpriseSVDpp = surprise_class("surprise-svdpp", "SVDpp", {"n_factors": [20], "reg_all": [0.02, 0.05]})
SurpriseKNNBaseline = surprise_class("surprise-knnbaseline", "KNNBaseline", {"k": [20, 40, 80]})
SurpriseBaselineOnly = surprise_class("surprise-baselineonly", "BaselineOnly", {})

RANKING_PEERS: list[type[Recommender]] = [ImplicitALS, ImplicitBPR, ImplicitCosine, ImplicitBM25]
RATING_PEERS: list[type[Recommender]] = [
    SurpriseSVD,
    SurpriseSVDpp,
    SurpriseKNNBaseline,
    SurpriseBaselineOnly,
]
