"""Training use cases: train on the store, measure, register a version, promote it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from openflix.recs.evaluation import evaluate_split
from openflix.recs.models import create
from openflix.recs.splits import temporal_split
from openflix.registry.artifacts import ArtifactStore
from openflix.registry.versions import VersionInfo, promote, register
from openflix.services.catalog import interactions_from_store
from openflix.store.db import translating

__all__ = ["train_version"]

Progress = Callable[[str], None]


def train_version(
    engine: Engine,
    artifacts: ArtifactStore,
    name: str,
    *,
    params: dict[str, Any] | None = None,
    do_promote: bool = False,
    progress: Progress | None = None,
) -> VersionInfo:
    """Train model ``name`` on every event of the store and register it as a new version.

    Its metrics come from a per-member temporal 80/20 holdout of the same
    data (NDCG@10 and friends), measured before the final fit on all of it.
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    data = interactions_from_store(engine)
    say(f"read {data.nnz:,} events from the store")
    train, test = temporal_split(data)
    result = evaluate_split(create(name, **(params or {})), train, test, kind="temporal", do_tune=False)
    say(f"holdout NDCG@10 {result.metrics.get('ndcg@10', float('nan')):.4f}")
    model = create(name, **(params or {})).fit(data)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["train_seconds"] = round(time.perf_counter() - t0, 3)
    info = register(engine, artifacts, model, name=name, metrics=metrics, data=data)
    say(f"registered version {info.id}")
    if do_promote:
        with translating(engine), engine.begin() as conn:
            info = promote(conn, info.id)
        say(f"promoted version {info.id}")
    return info
