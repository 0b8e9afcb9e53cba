"""Recommender models: one module per model, all following :class:`Recommender`."""

from openflix.recs.models.als import ALS
from openflix.recs.models.base import (
    MODELS,
    RatingModel,
    Recommender,
    load_model,
    register,
    top_n,
)
from openflix.recs.models.bayes import BayesianSVDpp
from openflix.recs.models.ease import EASE
from openflix.recs.models.itemknn import ItemKNN
from openflix.recs.models.popularity import Popularity
from openflix.recs.models.sequential import SequentialEASE

__all__ = [
    "ALS",
    "EASE",
    "MODELS",
    "BayesianSVDpp",
    "ItemKNN",
    "Popularity",
    "RatingModel",
    "Recommender",
    "SequentialEASE",
    "load_model",
    "register",
    "top_n",
]


def create(name: str, **params: object) -> Recommender:
    """A new model of the registered ``name`` with ``params``."""
    from openflix.errors import ModelError

    cls = MODELS.get(name)
    if cls is None:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return cls(**params)
