"""Shared fixtures: real datasets (skipped with a reason where absent) and small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from openflix.recs.data import Interactions
from openflix.settings import bundled_data

ML100K = Path(os.environ.get("OPENFLIX_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k"))


@pytest.fixture(scope="session")
def ml100k_path() -> Path:
    """The MovieLens 100K folder (never bundled: its licence forbids redistribution)."""
    if not (ML100K / "u.data").exists():
        pytest.skip(
            f"MovieLens 100K not found at {ML100K}; set OPENFLIX_ML100K or run 'openflix data fetch ml-100k'"
        )
    return ML100K


@pytest.fixture(scope="session")
def latest_small_path() -> Path:
    return bundled_data()


@pytest.fixture(scope="session")
def latest_small(latest_small_path: Path) -> Interactions:
    from openflix.recs.datasets import load

    return load(latest_small_path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def make_interactions(
    n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0
) -> Interactions:
    """Members in two taste groups (even/odd titles), with times and 1-5 ratings."""
    r = np.random.default_rng(seed)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        chosen = r.choice(pool, size=min(per_user, len(pool)), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
        ratings += r.integers(1, 6, len(chosen)).tolist()
        times += (1_000_000 + u * 10 + np.arange(len(chosen)) * 3600).tolist()
    return Interactions.from_ids(
        np.array(users) + 100,
        np.array(items) + 1000,
        np.array(ratings, float),
        np.array(times),
        item_info={i + 1000: (f"Title {i}", "Drama" if i % 2 else "Comedy") for i in range(n_items)},
        source="synthetic",
    )


@pytest.fixture
def small() -> Interactions:
    return make_interactions()
