from __future__ import annotations

from openflix.recs.data import Interactions
from openflix.recs.evaluation import evaluate_split, tune, validation_split
from openflix.recs.models import EASE, SequentialEASE
from openflix.recs.splits import temporal_split


def test_tuning_never_sees_the_test_part(small: Interactions) -> None:
    train, test = temporal_split(small)
    fit_part, val_part = validation_split(train, "temporal")
    assert fit_part.nnz + val_part.nnz == train.nnz
    test_keys = set(zip(test.users.tolist(), test.items.tolist(), strict=True))
    val_keys = set(zip(val_part.users.tolist(), val_part.items.tolist(), strict=True))
    assert not test_keys & val_keys


def test_tune_picks_the_best_validation_value_and_reports_all(small: Interactions) -> None:
    train, _ = temporal_split(small)
    model, chosen, scores = tune(EASE(), train, grid={"l2": [1.0, 10.0, 100.0]})
    assert set(scores) == {"l2=1.0", "l2=10.0", "l2=100.0"}
    assert chosen["l2"] == float(max(scores, key=scores.__getitem__).split("=")[1])
    assert model.l2 == chosen["l2"] and not model.is_fitted


def test_scoring_only_params_reuse_one_fit(small: Interactions) -> None:
    train, _ = temporal_split(small)
    grid = {"reg": [10.0], "tau": [1.0, 5.0, 50.0]}
    _, chosen, scores = tune(SequentialEASE(), train, grid=grid)
    refit = {
        tau: tune(SequentialEASE(), train, grid={"reg": [10.0], "tau": [tau]})[2][f"reg=10.0, tau={tau}"]
        for tau in grid["tau"]
    }
    assert [scores[f"reg=10.0, tau={t}"] for t in grid["tau"]] == [refit[t] for t in grid["tau"]]
    assert chosen["tau"] in grid["tau"]


def test_evaluate_split_reports_chosen_values(small: Interactions) -> None:
    train, test = temporal_split(small)
    ev = evaluate_split(EASE(), train, test, kind="temporal")
    assert ev.tuned
    assert set(ev.extra["chosen"]) == {"l2"}
    assert 0 <= ev.metrics["ndcg@10"] <= 1
