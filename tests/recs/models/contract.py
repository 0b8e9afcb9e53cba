"""The contract every recommender passes; a model's test class supplies only ``make_model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_interactions

from openflix.errors import NotFittedError
from openflix.recs.data import Interactions
from openflix.recs.models import RatingModel, Recommender, load_model


class RecommenderContract:
    """Mix into a test class and define ``make_model``."""

    @classmethod
    def make_model(cls) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Interactions:
        return make_interactions()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: Interactions) -> Recommender:
        return cls.make_model().fit(data)

    def test_unfitted_model_says_so(self) -> None:
        with pytest.raises(NotFittedError):
            self.make_model().recommend(0)

    def test_recommend_excludes_seen_and_returns_n_distinct(
        self, fitted: Recommender, data: Interactions
    ) -> None:
        items, scores = fitted.recommend(np.arange(data.n_users), 5)
        assert items.shape == (data.n_users, 5)
        seen = data.binary.toarray().astype(bool)
        valid = items >= 0
        assert valid.all()
        assert not seen[np.arange(data.n_users)[:, None], items].any()
        assert all(len(set(row)) == 5 for row in items.tolist())
        assert (np.diff(scores, axis=1) <= 1e-6).all()

    def test_single_member_matches_batch(self, fitted: Recommender) -> None:
        one, _ = fitted.recommend(3, 5)
        batch, _ = fitted.recommend([1, 3], 5)
        assert one.tolist() == batch[1].tolist()

    def test_allow_and_deny_lists(self, fitted: Recommender, data: Interactions) -> None:
        allow = np.arange(0, data.n_items, 3)
        items, _ = fitted.recommend(0, 5, allow=allow)
        assert set(items[items >= 0].tolist()) <= set(allow.tolist())
        first, _ = fitted.recommend(0, 5)
        items, _ = fitted.recommend(0, 5, deny=first[:2])
        assert not set(first[:2].tolist()) & set(items.tolist())

    def test_fold_in_of_a_known_history_matches_the_member(self, fitted: Recommender) -> None:
        # scoring a member's training history as if they were new gives (nearly) their scores
        for row in (4, 7, 10):
            h = fitted.history.rows([row])
            known = fitted.score(h, np.array([row]))[0]
            folded = fitted.score(h)[0]
            assert np.corrcoef(known, folded)[0, 1] >= 0.85

    def test_scoring_leaves_the_history_untouched(self, fitted: Recommender) -> None:
        h = fitted.history.rows([3, 5])
        before = (h.items.copy(), h.values.copy(), h.times.copy())
        fitted.score(h)
        fitted.recommend_batch(h)
        assert all(np.array_equal(a, b) for a, b in zip(before, (h.items, h.values, h.times), strict=True))

    def test_fold_in_of_a_new_member_follows_their_taste(
        self, fitted: Recommender, data: Interactions
    ) -> None:
        # a new member who watched only odd titles gets mostly odd titles
        odd = [data.item_index(1000 + i) for i in (1, 3, 5, 7, 9, 11)]
        items, _ = fitted.recommend_history(odd, 5)
        if type(fitted).name != "popularity" and not fitted.predicts_ratings:  # ranks by which titles
            odd_share = np.mean([int(data.item_ids[i]) % 2 == 1 for i in items])
            assert odd_share >= 0.8
        assert not set(items.tolist()) & set(odd)

    def test_similar_items_excludes_the_title(self, fitted: Recommender) -> None:
        items, scores = fitted.similar_items(2, 5)
        assert 2 not in items.tolist()
        assert len(items) == 5
        assert (np.diff(scores) <= 1e-6).all()

    def test_save_and_load_give_the_same_recommendations(self, fitted: Recommender, tmp_path: Path) -> None:
        path = fitted.save(tmp_path / "m.npz")
        loaded = load_model(path)
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        a, _ = fitted.recommend(np.arange(10), 5)
        b, _ = loaded.recommend(np.arange(10), 5)
        assert a.tolist() == b.tolist()
        h = fitted.history.rows([7])
        fa, _ = fitted.recommend_history(h.items[:5], 5)
        fb, _ = loaded.recommend_history(h.items[:5], 5)
        assert fa.tolist() == fb.tolist()
        assert loaded.item_info is not None and loaded.item_info.titles[0] == "Title 0"

    def test_predict_is_in_rating_range(self, fitted: Recommender, data: Interactions) -> None:
        if not isinstance(fitted, RatingModel):
            pytest.skip("not a rating model")
        pred = fitted.predict(data.users[:50], data.items[:50])
        assert pred.shape == (50,)
        assert (pred >= 1).all() and (pred <= 5).all()
        unknown = fitted.predict(np.array([-1]), np.array([0]))
        assert np.isfinite(unknown).all()
