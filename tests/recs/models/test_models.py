from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.recs.models.contract import RecommenderContract

from openflix.errors import DataError
from openflix.recs.models import (
    ALS,
    EASE,
    BayesianSVDpp,
    ItemKNN,
    Popularity,
    Recommender,
    SequentialEASE,
    create,
)


class TestPopularity(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return Popularity(half_life_days=30)


class TestItemKNN(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return ItemKNN(k=20)


class TestEASE(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return EASE(l2=10)


class TestALS(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return ALS(factors=8, iterations=10, regularization=0.1)


class TestBayesianSVDpp(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return BayesianSVDpp(n_factors=4, n_iter=12, burn_in=4)


class TestSequentialEASE(RecommenderContract):
    @classmethod
    def make_model(cls) -> Recommender:
        return SequentialEASE(reg=10)


def test_sequential_can_ignore_order() -> None:
    import math

    import numpy as np
    from tests.conftest import make_interactions

    data = make_interactions()
    model = SequentialEASE(alpha=1.0, tau=math.inf).fit(data)
    h = model.history.rows([3])
    shuffled = type(h)(h.indptr, h.items[::-1].copy(), h.values, h.times, h.n_items)
    assert np.allclose(model.score(h), model.score(shuffled))


def test_sequential_grams_do_not_depend_on_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from tests.conftest import make_interactions

    import openflix.recs.models.sequential as seq

    data = make_interactions()
    whole = SequentialEASE(reg=10).fit(data)
    monkeypatch.setattr(seq, "BLOCK_EVENTS", 50)  # many small blocks of members
    blocked = SequentialEASE(reg=10).fit(data)
    assert np.allclose(whole.weights_, blocked.weights_, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("als", {"nosuch": 1}, "nosuch: not a hyperparameter of als (expected one of alpha, factors,"),
        ("als", {"factors": 2.5}, "factors: expected a whole number >= 0, got 2.5"),
        ("als", {"factors": True}, "factors: expected a whole number >= 0, got True"),
        ("als", {"iterations": -1}, "iterations: expected a whole number >= 0, got -1"),
        ("ease", {"l2": float("nan")}, "l2: expected a number >= 0, got nan"),
        ("ease", {"l2": "400"}, "l2: expected a number >= 0, got '400'"),
        ("bayes-svdpp", {"user_implicit": 1}, "user_implicit: expected true or false, got 1"),
        # within the type, outside what the model can learn from: each of these trained without a
        # word and scored every title 0, returned id -1 with score -inf, or failed deep in the fit
        ("als", {"factors": 0}, "factors: expected a whole number >= 1, got 0"),
        ("itemknn", {"k": 0}, "k: expected a whole number >= 1, got 0"),
        ("ease", {"l2": 0}, "l2: expected a number > 0, got 0"),
        ("sequential", {"tau": 0.0}, "tau: expected a number > 0, got 0.0"),
        ("sequential", {"target_decay": 2.0}, "target_decay: expected a number in (0, 1], got 2.0"),
        ("sequential", {"in_len": 0}, "in_len: expected a whole number >= 1, got 0"),
        ("bayes-svdpp", {"n_chains": 0}, "n_chains: expected a whole number >= 1, got 0"),
        ("bayes-svdpp", {"n_iter": 10}, "burn_in: expected a whole number below n_iter (10), got 10"),
        ("popularity", {"half_life_days": 0.0}, "half_life_days: expected a number > 0, got 0.0"),
    ],
)
def test_a_hyperparameter_the_model_would_misread_is_refused_naming_it(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        create(name, **params)


def test_hyperparameters_of_the_right_kind_make_the_model() -> None:
    assert create("sequential", tau=float("inf"), alpha=1).tau == float("inf")  # an int where a float goes
    assert create("popularity", half_life_days=None).half_life_days is None
    assert create("ease", l2=0.5).l2 == 0.5
    assert create("bayes-svdpp", n_factors=0).n_factors == 0  # biases only: a model of its own


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ItemKNN(k=0), "itemknn hyperparameter k: expected a whole number >= 1, got 0"),
        (BayesianSVDpp(n_iter=4, burn_in=4), "burn_in: expected a whole number below n_iter (4), got 4"),
    ],
)
def test_a_model_made_directly_with_a_hyperparameter_out_of_bounds_refuses_to_fit(
    model: Recommender, message: str
) -> None:
    from tests.conftest import make_interactions

    with pytest.raises(DataError, match=re.escape(message)):
        model.fit(make_interactions())
    assert not model.is_fitted


def test_saving_onto_a_directory_names_it_and_leaves_no_partial_file(tmp_path: Path) -> None:
    from tests.conftest import make_interactions

    model = create("popularity").fit(make_interactions())
    (tmp_path / "models").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory, expected a model file name") as info:
        model.save(tmp_path / "models")
    assert info.value.filename == str(tmp_path / "models")  # it named models.tmp, and left it behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_model_file_with_parts_missing_or_foreign_is_a_model_file_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    import json

    import numpy as np
    from tests.conftest import make_interactions

    from openflix.errors import ModelFileError
    from openflix.recs.models import load_model

    saved = create("itemknn", k=5).fit(make_interactions()).save(tmp_path / "m.npz")
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def write(name: str, **changes: object) -> Path:
        out = {**arrays, **changes}
        np.savez(tmp_path / name, **{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
        return tmp_path / name

    meta = json.loads(arrays["meta"].tobytes())
    foreign = json.dumps({**meta, "params": {"nosuch": 1}}).encode()
    for path, message in (
        (write("a.npz", h_items=None), "not a whole openflix model file (no h_items)"),  # was KeyError
        (
            write("b.npz", meta=np.frombuffer(foreign, np.uint8)),
            "a 'itemknn' model file that openflix cannot read",
        ),
        (write("c.npz", s_indptr=None), "a 'itemknn' model file that openflix cannot read (KeyError"),
        (write("d.npz", meta=np.array([{"a": 1}], dtype=object)), "(it holds pickled Python objects)"),
    ):
        with pytest.raises(ModelFileError, match=re.escape(message)):
            load_model(path)
