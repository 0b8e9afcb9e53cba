from __future__ import annotations

from pathlib import Path

import numpy as np

from openflix.recs.data import Interactions
from openflix.recs.datasets import load
from openflix.recs.splits import predefined_folds, random_split, temporal_split


def test_temporal_holds_out_the_latest_round_fifth_with_ties_in_file_order() -> None:
    # member 1: 6 events, two share the latest time -> round(1.2) = 1 held out: the later in the file
    data = Interactions.from_ids(
        [1, 1, 1, 1, 1, 1, 2, 2, 2],
        [10, 11, 12, 13, 14, 15, 10, 11, 12],
        None,
        [5, 1, 2, 9, 3, 9, 1, 2, 3],
    )
    train, test = temporal_split(data)
    held = {
        (int(data.user_ids[u]), int(data.item_ids[i])) for u, i in zip(test.users, test.items, strict=True)
    }
    assert held == {(1, 15), (2, 12)}  # round(0.2*3) = 1 for member 2
    assert train.nnz + test.nnz == data.nnz


def test_random_split_is_seeded_and_per_member(small: Interactions) -> None:
    _a_train, a_test = random_split(small, seed=1)
    _b_train, b_test = random_split(small, seed=1)
    _c_train, c_test = random_split(small, seed=2)
    assert np.array_equal(a_test.items, b_test.items)
    assert not np.array_equal(a_test.items, c_test.items)
    counts = np.bincount(a_test.users, minlength=small.n_users)
    assert (counts == round(0.2 * 12)).all()


def test_ml100k_folds_match_the_files(ml100k_path: Path) -> None:
    full = load(ml100k_path)
    folds = predefined_folds(ml100k_path, full)
    assert len(folds) == 5
    tests = np.concatenate([t.users.astype(np.int64) * full.n_items + t.items for _, t in folds])
    assert len(np.unique(tests)) == 100_000  # the five test sets partition the data
    for train, test in folds:
        assert train.nnz == 80_000 and test.nnz == 20_000


def test_compact_keeps_only_used_ids(small: Interactions) -> None:
    part = small.subset(small.items < 10).compact()
    assert part.n_items == 10
    assert part.n_users == len(np.unique(small.users[small.items < 10]))
    assert part.item_title(0) == small.item_title(0)
    assert np.allclose(part.csr.sum(), small.csr[:, :10].sum())
