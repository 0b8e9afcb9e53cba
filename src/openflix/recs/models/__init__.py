"""Recommender models: one module per model, all following :class:`Recommender`."""

import math
from collections.abc import Mapping

from openflix.recs.models.als import ALS
from openflix.recs.models.base import (
    MODELS,
    Bounds,
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
    "Bounds",
    "ItemKNN",
    "Popularity",
    "RatingModel",
    "Recommender",
    "SequentialEASE",
    "check_hyperparameters",
    "create",
    "load_model",
    "register",
    "top_n",
]


def create(name: str, **params: object) -> Recommender:
    """A new model of the registered ``name`` with ``params`` (checked by :func:`check_hyperparameters`)."""
    check_hyperparameters(name, params)
    return MODELS[name](**params)


def check_hyperparameters(name: str, params: Mapping[str, object], where: str = "") -> None:
    """Refuse a model name or hyperparameters the model would refuse, misread or fail on while fitting.

    Each hyperparameter is checked against the model's signature: an unknown
    name, a value of another type than its default's (an integer for an
    integer, a number for a float, true/false for a flag) or a negative or NaN
    number is :class:`~openflix.errors.DataError` naming ``where + key`` —
    every hyperparameter here is a size, a count, a weight or a seed, none
    below 0 — and so is a value outside the model's own bounds
    (:meth:`Recommender.param_problem`: a count of 0 factors, a decay above
    1).  An unknown model is :class:`~openflix.errors.ModelError`.
    """
    from openflix.errors import DataError, ModelError

    cls = MODELS.get(name)
    if cls is None:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    accepted = cls.defaults()
    for key, value in params.items():
        if key not in accepted:
            expected = ", ".join(sorted(accepted))
            raise DataError(f"{where}{key}: not a hyperparameter of {name} (expected one of {expected})")
        if (problem := _hyperparameter_problem(accepted[key], value)) is not None:
            raise DataError(f"{where}{key}: expected {problem}, got {value!r}")
    every = {**accepted, **params}
    if (out_of_bounds := cls.param_problem(every)) is not None:
        key, expected = out_of_bounds
        raise DataError(f"{where}{key}: expected {expected}, got {every[key]!r}")


def _hyperparameter_problem(default: object, value: object) -> str | None:
    """What ``value`` should have been, judged by the hyperparameter's ``default``; None if it is fine."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, int):
        return None if number and isinstance(value, int) and value >= 0 else "a whole number >= 0"
    if isinstance(default, float) or default is None:
        if value is None and default is None:
            return None
        ok = number and not math.isnan(float(value)) and float(value) >= 0  # type: ignore[arg-type]
        return None if ok else "a number >= 0"
    return None
