from __future__ import annotations

import numpy as np
import pytest

from openflix.recs.metrics import ranking_metrics, rating_metrics


def test_ndcg_recall_precision_map_by_hand() -> None:
    # member 0: relevant {1, 5, 9}; list [1, 2, 5] -> hits at ranks 1 and 3
    # member 1: relevant {4}; list [0, 4, 3] -> hit at rank 2
    top = np.array([[1, 2, 5], [0, 4, 3]])
    m = ranking_metrics(top, np.array([0, 1]), np.array([0, 0, 0, 1]), np.array([1, 5, 9, 4]), 10, 3)
    d = 1 / np.log2(np.arange(2, 5))
    ndcg0 = (d[0] + d[2]) / d[:3].sum()
    ndcg1 = d[1] / d[0]
    assert m["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["map@3"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5 / 1) / 2)
    assert m["coverage"] == pytest.approx(6 / 10)


def test_members_without_test_items_are_not_averaged() -> None:
    top = np.array([[1, 2], [3, 4]])
    m = ranking_metrics(top, np.array([0, 1]), np.array([0]), np.array([1]), 5, 2)
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["users"] == 1


def test_rmse_mae() -> None:
    m = rating_metrics(np.array([1.0, 3.0]), np.array([2.0, 5.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(2.5))
    assert m["mae"] == pytest.approx(1.5)
