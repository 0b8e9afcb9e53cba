"""Use cases of the recommendation engine: train, recommend, find similar titles, evaluate.

These functions combine the pure ``recs`` core with files (datasets, saved
models); the CLI, the API and the jobs call them so behaviour is the same from
every face.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from openflix.errors import DataError, NotFoundError
from openflix.recs import datasets
from openflix.recs.data import Interactions
from openflix.recs.evaluation import Evaluation, evaluate_folds, evaluate_split, tune
from openflix.recs.models import create, load_model
from openflix.recs.models.base import Recommender
from openflix.recs.splits import predefined_folds, split

__all__ = [
    "Recommendation",
    "evaluate_models",
    "index_of",
    "load_dataset",
    "recommend_for_history",
    "recommend_for_member",
    "similar_titles",
    "train_model",
    "tune_model",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Recommendation:
    """One recommended title: its id, title, genres and score (higher is better)."""

    item_id: Any
    title: str
    genres: str
    score: float


def load_dataset(
    path: str | Path,
    *,
    fmt: str = "auto",
    sep: str | None = None,
    columns: Sequence[str] | None = None,
) -> Interactions:
    """Load any supported dataset (see :mod:`openflix.recs.datasets`)."""
    return datasets.load(path, fmt=fmt, sep=sep, columns=columns)


def train_model(data: Interactions, name: str, **params: Any) -> Recommender:
    """Fit the model called ``name`` on ``data``."""
    return create(name, **params).fit(data)


def tune_model(
    data: Interactions,
    name: str,
    *,
    kind: str = "temporal",
    fixed: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Hyperparameters of model ``name`` chosen on a validation split of ``data`` (``fixed`` ones kept)."""
    model = create(name, **(fixed or {}))
    grid = {k: v for k, v in type(model).param_grid.items() if k not in (fixed or {})}
    metric = "rmse" if model.predicts_ratings else None
    _, chosen, _ = tune(model, data, kind=kind, metric=metric, grid=grid, progress=progress)
    return chosen


def open_model(
    model_file: str | Path | None, data: Interactions | None, name: str, **params: Any
) -> Recommender:
    """A saved model, or a model of ``name`` trained on ``data`` right now."""
    if model_file is not None:
        return load_model(model_file)
    if data is None:
        raise DataError("give a saved model (--model-file) or a dataset to train on (--data)")
    return train_model(data, name, **params)


def _rows(model: Recommender, items: np.ndarray, scores: np.ndarray) -> list[Recommendation]:
    info = model.item_info
    out = []
    for i, s in zip(items.tolist(), scores.tolist(), strict=True):
        if i < 0:
            continue
        title = str(info.titles[i]) if info is not None else str(model.item_ids[i])
        genres = str(info.genres[i]) if info is not None else ""
        out.append(Recommendation(_plain(model.item_ids[i]), title, genres, float(s)))
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def index_of(ids: np.ndarray, value: Any, what: str) -> int:
    index = pd.Index(ids)
    key: Any = value
    if ids.dtype.kind in "iu":
        try:
            key = int(value)
        except (TypeError, ValueError):
            raise NotFoundError(f"unknown {what} id {value!r}: ids of this data are integers") from None
    pos = index.get_indexer([key])[0]
    if pos < 0:
        raise NotFoundError(f"unknown {what} id {value!r} (the model knows {len(ids):,} {what}s)")
    return int(pos)


def recommend_for_member(model: Recommender, member_id: Any, n: int = 10) -> list[Recommendation]:
    """Top ``n`` unseen titles for a member of the training data."""
    user = index_of(model.user_ids, member_id, "member")
    items, scores = model.recommend(user, n)
    return _rows(model, items, scores)


def recommend_for_history(
    model: Recommender,
    item_ids: Sequence[Any],
    n: int = 10,
    *,
    times: Sequence[int] | None = None,
    values: Sequence[float] | None = None,
) -> list[Recommendation]:
    """Top ``n`` titles for a member known only by titles they watched (fold-in, in time order)."""
    if not item_ids:
        raise DataError("the history is empty: give at least one title id")
    idx = [index_of(model.item_ids, i, "title") for i in item_ids]
    items, scores = model.recommend_history(idx, n, times=times, values=values)
    return _rows(model, items, scores)


def similar_titles(model: Recommender, item_id: Any, n: int = 10) -> list[Recommendation]:
    """The ``n`` titles most similar to ``item_id``."""
    item = index_of(model.item_ids, item_id, "title")
    items, scores = model.similar_items(item, n)
    return _rows(model, items, scores)


def title_of(model: Recommender, item_id: Any) -> str:
    item = index_of(model.item_ids, item_id, "title")
    info = model.item_info
    return str(info.titles[item]) if info is not None else str(item_id)


def evaluate_models(
    data: Interactions,
    names: Sequence[str],
    *,
    kind: str = "temporal",
    k: int = 10,
    seed: int = 42,
    tune: bool = True,
    data_path: str | Path | None = None,
    progress: Progress | None = None,
) -> list[Evaluation]:
    """Evaluate each model on one split of ``data`` (``temporal``, ``random`` or ``folds``)."""
    results = []
    if kind == "folds":
        if data_path is None:
            raise DataError("--split folds needs the MovieLens 100K folder as --data")
        folds = predefined_folds(data_path, data)
        for name in names:
            if progress:
                progress(f"{name}: 5 folds")
            results.append(
                evaluate_folds(create(name), folds, k=k, seed=seed, do_tune=tune, progress=progress)
            )
        return results
    train, test = split(data, kind, 0.2, seed)
    for name in names:
        if progress:
            progress(f"{name}: tuning on validation" if tune else f"{name}: fitting")
        model = create(name)
        metric = "rmse" if model.predicts_ratings else None
        results.append(
            evaluate_split(
                model, train, test, kind=kind, k=k, seed=seed, do_tune=tune, metric=metric, progress=progress
            )
        )
    return results
