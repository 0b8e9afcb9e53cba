"""Evaluate and tune models on a split, the same way for every model.

Hyperparameters are chosen on a validation split cut from the training part
only (the same kind of split, applied again), never on the test part; the
chosen values are reported with the results.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openflix.errors import DataError
from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.metrics import ranking_metrics, rating_metrics
from openflix.recs.models.base import RatingModel, Recommender
from openflix.recs.splits import Split, random_split, temporal_split

__all__ = ["Evaluation", "evaluate", "evaluate_folds", "tune"]

Progress = Callable[[str], None]


@dataclass
class Evaluation:
    """Metrics of one model on one split, with the parameters used and timings (seconds)."""

    model: str
    metrics: dict[str, float]
    params: dict[str, Any]
    fit_seconds: float
    tuned: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate(model: Recommender, train: Interactions, test: Interactions, k: int = 10) -> dict[str, float]:
    """Fit ``model`` on ``train`` and measure it on ``test`` (ranking, plus RMSE/MAE for rating models)."""
    model.fit(train)
    return measure(model, train, test, k)


def measure(model: Recommender, train: Interactions, test: Interactions, k: int = 10) -> dict[str, float]:
    """Measure an already fitted ``model`` on ``test`` (see :func:`evaluate`)."""
    if test.nnz == 0:
        raise DataError(
            f"nothing to measure on: the held-out part of the split is empty ({train.nnz:,} events to "
            "learn from); an evaluation needs more events"
        )
    users = np.unique(test.users).astype(np.int64)
    history = History.from_interactions(train).rows(users)
    top, _ = model.recommend_batch(history, users, n=k)
    pop = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
    out = ranking_metrics(
        top,
        users,
        test.users,
        test.items,
        train.n_items,
        k,
        item_popularity=pop,
        n_train_users=len(np.unique(train.users)),
    )
    if isinstance(model, RatingModel):
        out.update(rating_metrics(model.predict(test.users, test.items), test.ratings))
    return out


def validation_split(train: Interactions, kind: str, seed: int = 42) -> Split:
    """Cut a validation split from a training part: the same kind of holdout again."""
    if kind == "random":
        return random_split(train, 0.2, seed + 1)
    return temporal_split(train, 0.2)


def tune(
    model: Recommender,
    train: Interactions,
    *,
    kind: str = "temporal",
    k: int = 10,
    seed: int = 42,
    metric: str | None = None,
    grid: dict[str, Sequence[Any]] | None = None,
    progress: Progress | None = None,
) -> tuple[Recommender, dict[str, Any], dict[str, float]]:
    """Choose hyperparameters on a validation split of ``train``.

    Tries every combination of ``grid`` (default: the model's ``param_grid``),
    scoring ``ndcg@k`` (or ``rmse``, lower is better, for rating models when
    ``metric='rmse'``).  Returns an unfitted model with the best values, the
    values, and the validation score of each candidate (keyed by its values).
    """
    grid = type(model).param_grid if grid is None else grid
    metric = metric or f"ndcg@{k}"
    lower_is_better = metric in ("rmse", "mae")
    fit_part, val_part = validation_split(train, kind, seed)
    names = list(grid)
    free = [n for n in names if n in type(model).scoring_params]
    fixed = [n for n in names if n not in free]
    best: tuple[float, dict[str, Any]] | None = None
    scores: dict[str, float] = {}
    candidates = []
    for fixed_values in itertools.product(*(grid[n] for n in fixed)):
        fitted = model.clone(**dict(zip(fixed, fixed_values, strict=True))).fit(fit_part)
        for free_values in itertools.product(*(grid[n] for n in free)):
            for n, v in zip(free, free_values, strict=True):  # scoring-only: no refit
                setattr(fitted, n, v)
            params = dict(zip(fixed + free, fixed_values + free_values, strict=True))
            candidates.append((params, measure(fitted, fit_part, val_part, k)[metric]))
            if progress:
                progress(f"{model.name} {params}: {metric} {candidates[-1][1]:.4f}")
    for params, result in candidates:
        scores[", ".join(f"{n}={v}" for n, v in params.items())] = result
        key = -result if lower_is_better else result
        if best is None or key > best[0]:
            best = (key, params)
    chosen = best[1] if best else {}
    return model.clone(**chosen), chosen, scores


def evaluate_split(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    *,
    kind: str,
    k: int = 10,
    seed: int = 42,
    do_tune: bool = True,
    metric: str | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Tune on validation (optional), refit on the whole training part, measure on test."""
    chosen: dict[str, Any] = {}
    if do_tune and type(model).param_grid:
        model, chosen, _ = tune(model, train, kind=kind, k=k, seed=seed, metric=metric, progress=progress)
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    metrics = measure(model, train, test, k)
    return Evaluation(
        model.name, metrics, model.get_params(), fit_s, tuned=bool(chosen), extra={"chosen": chosen}
    )


def evaluate_folds(
    model: Recommender,
    folds: Sequence[Split],
    *,
    k: int = 10,
    seed: int = 42,
    do_tune: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """Mean metrics over predefined folds; hyperparameters tuned on a random validation cut of each base."""
    per_fold = []
    fit_total = 0.0
    chosen_all = []
    for train, test in folds:
        metric = "rmse" if isinstance(model, RatingModel) else None
        ev = evaluate_split(
            model,
            train,
            test,
            kind="random",
            k=k,
            seed=seed,
            do_tune=do_tune,
            metric=metric,
            progress=progress,
        )
        per_fold.append(ev.metrics)
        fit_total += ev.fit_seconds
        chosen_all.append(ev.extra.get("chosen", {}))
    keys = per_fold[0].keys()
    mean = {key: float(np.mean([m[key] for m in per_fold])) for key in keys}
    return Evaluation(
        model.name,
        mean,
        model.get_params(),
        fit_total / len(folds),
        tuned=do_tune,
        extra={"chosen": chosen_all, "per_fold": per_fold},
    )
