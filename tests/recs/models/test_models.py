from __future__ import annotations

from tests.recs.models.contract import RecommenderContract

from openflix.recs.models import ALS, EASE, BayesianSVDpp, ItemKNN, Popularity, Recommender, SequentialEASE


class TestPopularity(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return Popularity(half_life_days=30)


class TestItemKNN(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return ItemKNN(k=20)


class TestEASE(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return EASE(l2=10)


class TestALS(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return ALS(factors=8, iterations=10, regularization=0.1)


class TestBayesianSVDpp(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return BayesianSVDpp(n_factors=4, n_iter=12, burn_in=4)


class TestSequentialEASE(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return SequentialEASE(reg=10)
