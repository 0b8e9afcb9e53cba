from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from openflix.cli import cli
from openflix.recs.datasets import load
from openflix.recs.evaluation import evaluate
from openflix.recs.models import ALS, Popularity
from openflix.recs.splits import temporal_split
from openflix.recs.synth import NETFLIX_SHAPE, synthesize

SMALL = dataclasses.replace(NETFLIX_SHAPE, n_users=3000, n_items=800)


def test_shape_of_the_draw() -> None:
    users, items, ratings, times = synthesize(60_000, SMALL, seed=1)
    assert len(users) == 60_000
    keys = users.astype(np.int64) * 10_000 + items
    assert len(np.unique(keys)) == len(keys)
    assert users.min() >= 1 and users.max() <= 3000
    assert set(np.unique(ratings).tolist()) == {1, 2, 3, 4, 5}
    assert 3.2 < ratings.mean() < 4.0
    years = times.astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970
    assert years.min() == 1999 and years.max() == 2005
    counts = np.sort(np.bincount(items))[::-1]
    assert counts[0] > 20 * np.median(counts)  # a long tail


def test_a_model_learns_the_latent_taste() -> None:
    users, items, ratings, times = synthesize(60_000, SMALL, seed=2)
    from openflix.recs.data import Interactions

    data = Interactions.from_ids(users, items, ratings, times)
    train, test = temporal_split(data)
    pop = evaluate(Popularity(), train, test)["ndcg@10"]
    als = evaluate(ALS(factors=32, iterations=10), train, test)["ndcg@10"]
    assert als > 1.3 * pop


def test_cli_writes_a_loadable_netflix_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "data",
            "synth",
            "--ratings",
            "5000",
            "--users",
            "500",
            "--items",
            "300",
            "--out",
            str(tmp_path / "nf"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = load(tmp_path / "nf")
    assert data.nnz == 5000
    assert data.item_title(0).startswith("Synthetic Title")


def test_more_ratings_than_half_the_pairs_is_refused_not_drawn_forever(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        ["data", "synth", "--ratings", "100", "--users", "1", "--items", "1", "--out", str(tmp_path / "nf")],
    )
    assert res.exit_code == 2 and "1 members x 1 titles give 1: add members or titles" in res.output
