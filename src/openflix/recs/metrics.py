"""Accuracy and beyond-accuracy metrics, vectorized over all members at once.

Ranking metrics follow the openflix protocol: every held-out event is a
relevant title (binary relevance), training titles are excluded from the
ranking before the metrics are taken, NDCG's ideal DCG covers
``min(|test|, K)`` titles, and averages run over members with at least one
held-out title.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ranking_metrics", "rating_metrics"]


def ranking_metrics(
    top: npt.NDArray[np.int64],
    users: npt.NDArray[np.int64],
    test_users: npt.NDArray[np.integer],
    test_items: npt.NDArray[np.integer],
    n_items: int,
    k: int,
    *,
    item_popularity: npt.NDArray[np.floating] | None = None,
    n_train_users: int | None = None,
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP at ``k``, catalog coverage and novelty.

    Parameters
    ----------
    top:
        ``(b, >=k)`` recommended title indices per evaluated member, best first (-1 = none).
    users:
        ``(b,)`` member index of each row of ``top``.
    test_users, test_items:
        ``(m,)`` held-out (member, title) pairs; duplicates count once.
    item_popularity:
        ``(n_items,)`` training event counts, for novelty (mean self-information
        ``-log2(count / n_train_users)`` of recommended titles, in bits).
    """
    top = top[:, :k]
    test_keys = np.unique(test_users.astype(np.int64) * n_items + test_items)
    n_rel = np.bincount((test_keys // n_items).astype(np.int64), minlength=int(users.max()) + 1)[users]
    keys = users[:, None] * n_items + top
    pos = np.searchsorted(test_keys, keys)
    pos = np.minimum(pos, len(test_keys) - 1)
    hit = (test_keys[pos] == keys) & (top >= 0)
    evaluated = n_rel > 0
    hit, n_rel_e = hit[evaluated], n_rel[evaluated]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hit * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_rel_e, k) - 1]
    hits = hit.sum(axis=1)
    cum_hits = np.cumsum(hit, axis=1)
    precision_at = cum_hits / np.arange(1, k + 1)
    ap = (precision_at * hit).sum(axis=1) / np.minimum(n_rel_e, k)
    out = {
        f"precision@{k}": float((hits / k).mean()),
        f"recall@{k}": float((hits / n_rel_e).mean()),
        f"ndcg@{k}": float((dcg / ideal).mean()),
        f"map@{k}": float(ap.mean()),
        "coverage": float(len(np.unique(top[top >= 0])) / n_items),
    }
    if item_popularity is not None and n_train_users:
        rec = top[evaluated]
        rec = rec[rec >= 0]
        p = np.maximum(item_popularity[rec], 1) / n_train_users
        out["novelty"] = float(np.mean(-np.log2(p)))
    out["users"] = float(evaluated.sum())
    return out


def rating_metrics(predicted: npt.NDArray[np.floating], actual: npt.NDArray[np.floating]) -> dict[str, float]:
    """RMSE and MAE of ``(m,)`` predictions."""
    err = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
