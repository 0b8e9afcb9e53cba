from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from openflix.recs.models import top_n


@settings(deadline=None)  # the first example compiles the kernel
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 30)),
        elements=st.sampled_from([0.0, 1.0, 2.5, -3.0, np.inf * -1, 7.0]),
    ),
    st.integers(1, 12),
)
def test_matches_a_stable_sort(scores: np.ndarray, n: int) -> None:
    items, vals = top_n(scores, n)
    for row, got_items, got_vals in zip(scores, items, vals, strict=True):
        order = np.argsort(-row, kind="stable")
        order = order[np.isfinite(row[order])][:n]
        assert got_items[: len(order)].tolist() == order.tolist()
        assert np.array_equal(got_vals[: len(order)], row[order])
        assert (got_items[len(order) :] == -1).all()
        assert np.isneginf(got_vals[len(order) :]).all()


@settings(deadline=None)  # the first example compiles the kernel
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(5, 8), st.integers(1, 40)),
        elements=st.sampled_from([0.0, 1.0, 2.5, -3.0, -np.inf, np.inf, np.nan, 7.0]),
    ),
    st.integers(1, 12),
)
def test_one_row_partition_agrees_with_the_compiled_kernel(scores: np.ndarray, n: int) -> None:
    from openflix.recs.models._topn import top_n_row

    items, vals = top_n(scores, n)  # more rows than FEW_ROWS: the compiled kernel
    for r, row in enumerate(scores):
        got_items, got_vals = top_n_row(row, n)
        assert got_items.tolist() == items[r].tolist()
        assert np.array_equal(got_vals, vals[r])
