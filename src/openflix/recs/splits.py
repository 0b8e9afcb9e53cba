"""Train/test splits for honest evaluation.

* :func:`temporal_split` — per member, the last ``round(frac·n)`` events by
  time (ties in file order) are held out;
* :func:`random_split` — per member, a seeded random ``round(frac·n)``;
* :func:`predefined_folds` — MovieLens 100K's ``u1..u5`` base/test files.

Every split returns parts that share the full data's index space, so a model
trained on one part scores titles of the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from openflix.errors import DataError, DataFormatError
from openflix.recs.data import Interactions

__all__ = ["Split", "holdout_mask", "predefined_folds", "random_split", "split", "temporal_split"]

Split = tuple[Interactions, Interactions]


def holdout_mask(
    users: npt.NDArray[np.int32], order: npt.NDArray[np.int64], n_users: int, frac: float
) -> npt.NDArray[np.bool_]:
    """Boolean ``(nnz,)``: True for the last ``round(frac·n)`` events of each member in ``order``."""
    counts = np.bincount(users, minlength=n_users)
    n_test = np.round(frac * counts).astype(np.int64)
    sorted_users = users[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[sorted_users]
    is_test_sorted = rank >= (counts - n_test)[sorted_users]
    mask = np.zeros(len(order), dtype=bool)
    mask[order] = is_test_sorted
    return mask


def temporal_split(data: Interactions, frac: float = 0.2) -> Split:
    """Hold out each member's latest ``round(frac·n)`` events (ties keep file order)."""
    _check_frac(frac)
    mask = holdout_mask(data.users, data.chronological_order(), data.n_users, frac)
    return data.subset(~mask), data.subset(mask)


def random_split(data: Interactions, frac: float = 0.2, seed: int = 42) -> Split:
    """Hold out a seeded random ``round(frac·n)`` of each member's events."""
    _check_frac(frac)
    keys = np.random.default_rng(seed).random(data.nnz)
    order = np.lexsort((keys, data.users)).astype(np.int64)
    mask = holdout_mask(data.users, order, data.n_users, frac)
    return data.subset(~mask), data.subset(mask)


def split(data: Interactions, kind: str, frac: float = 0.2, seed: int = 42) -> Split:
    """Dispatch on ``kind``: ``temporal`` or ``random``."""
    if kind == "temporal":
        return temporal_split(data, frac)
    if kind == "random":
        return random_split(data, frac, seed)
    raise DataError(f"unknown split {kind!r}; expected temporal or random (or folds for ML-100K)")


def predefined_folds(folder: str | Path, full: Interactions) -> list[Split]:
    """MovieLens 100K's five folds ``u1..u5`` as (base, test) parts of ``full`` (``u.data``)."""
    from openflix.recs.datasets import load_movielens_100k

    root = Path(folder)
    if root.is_file():
        root = root.parent
    if not (root / "u1.base").exists():
        raise DataFormatError(root, "no u1.base .. u5.test: --split folds needs the MovieLens 100K folder")
    key_full = _keys(full, full.users, full.items)
    order = np.argsort(key_full, kind="stable")
    out = []
    for k in range(1, 6):
        parts = []
        for name in (f"u{k}.base", f"u{k}.test"):
            part = load_movielens_100k(root / name)
            users = full.user_ids.searchsorted(part.user_ids[part.users])
            items = full.item_ids.searchsorted(part.item_ids[part.items])
            key = _keys(full, users, items)
            pos = np.searchsorted(key_full, key, sorter=order)
            pos = np.minimum(pos, len(order) - 1)
            idx = order[pos]
            if not np.array_equal(key_full[idx], key):
                raise DataFormatError(root / name, "holds ratings that are not in u.data")
            parts.append(full.subset(idx))
        out.append((parts[0], parts[1]))
    return out


def _keys(
    data: Interactions, users: npt.NDArray[np.integer], items: npt.NDArray[np.integer]
) -> npt.NDArray[np.int64]:
    return users.astype(np.int64) * data.n_items + items


def _check_frac(frac: float) -> None:
    if not 0.0 < frac < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1 (got {frac})")
