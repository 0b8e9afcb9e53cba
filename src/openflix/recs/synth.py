"""Synthetic ratings with the Netflix Prize's shape, for scale tests.

Members belong to latent taste groups; each group prefers titles whose latent
vectors point its way, on top of a power-law title popularity; members'
activity is heavy-tailed; ratings come from biases plus the taste match; dates
run from November 1999 to December 2005 with usage growing over time.  A model
that learns taste beats popularity on this data, as on the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openflix.errors import DataError

__all__ = ["NETFLIX_SHAPE", "SynthShape", "synthesize"]

DAY = 86_400
START = 941_414_400  # 1999-11-01 UTC
END = 1_135_987_200  # 2005-12-31 UTC


@dataclass(frozen=True)
class SynthShape:
    """Sizes and shape parameters of a synthetic dataset."""

    n_users: int = 480_189
    n_items: int = 17_770
    n_groups: int = 48
    factors: int = 16
    popularity_exponent: float = 1.0
    taste_strength: float = 2.5


NETFLIX_SHAPE = SynthShape()


def synthesize(
    n_ratings: int, shape: SynthShape = NETFLIX_SHAPE, seed: int = 42
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """Draw about ``n_ratings`` distinct (member, title) ratings.

    Returns
    -------
    users, items:
        ``int32`` ``(n_ratings,)`` 1-based ids (as in the Netflix Prize), each
        (member, title) pair at most once, sorted by member.
    ratings:
        ``int8`` ``(m,)`` stars 1..5.
    timestamps:
        ``int64`` ``(m,)`` Unix seconds at midnight UTC, 1999-11-01 .. 2005-12-31.
    """
    n_users, n_items, g, k = shape.n_users, shape.n_items, shape.n_groups, shape.factors
    if n_ratings > n_users * n_items // 2:  # drawing distinct pairs near the whole matrix never ends
        raise DataError(
            f"{n_ratings:,} ratings need at least {2 * n_ratings:,} possible (member, title) pairs; "
            f"{n_users:,} members x {n_items:,} titles give {n_users * n_items:,}: add members or titles"
        )
    rng = np.random.default_rng(seed)
    # titles: power-law popularity in a random order, latent vectors, quality bias
    rank = rng.permutation(n_items) + 1
    popularity = rank.astype(np.float64) ** -shape.popularity_exponent
    item_vec = rng.normal(size=(n_items, k)) / np.sqrt(k)
    item_bias = rng.normal(0.0, 0.3, n_items) + 0.05 * np.log(popularity / np.median(popularity))
    # members: a taste group each, heavy-tailed activity
    centroids = rng.normal(size=(g, k))
    group = rng.integers(0, g, n_users)
    activity = rng.lognormal(0.0, 1.1, n_users)
    user_bias = rng.normal(0.0, 0.4, n_users)
    p_user = activity / activity.sum()
    item_p = []
    for c in range(g):
        p = popularity * np.exp(shape.taste_strength * (item_vec @ centroids[c]))
        item_p.append(np.cumsum(p / p.sum()))
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_ratings:  # draw until enough distinct (member, title) pairs
        need = int((n_ratings - len(keys)) * 1.15) + 10
        users = rng.choice(n_users, size=need, p=p_user)
        items = np.empty(need, dtype=np.int64)
        by_group = np.argsort(group[users], kind="stable")
        bounds = np.searchsorted(group[users][by_group], np.arange(g + 1))
        for c in range(g):  # one vectorized draw per taste group
            lo, hi = bounds[c], bounds[c + 1]
            draws = np.searchsorted(item_p[c], rng.random(hi - lo) * item_p[c][-1])
            items[by_group[lo:hi]] = np.minimum(draws, n_items - 1)
        keys = np.unique(np.concatenate([keys, users.astype(np.int64) * n_items + items]))
    keys = np.sort(rng.permutation(keys)[:n_ratings])
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    match = np.einsum("ij,ij->i", centroids[group[users]], item_vec[items])
    match = (match - match.mean()) / (match.std() + 1e-9)
    raw = 3.6 + item_bias[items] + user_bias[users] + 0.6 * match + rng.normal(0.0, 0.7, len(users))
    ratings = np.clip(np.rint(raw), 1, 5).astype(np.int8)
    days = (END - START) // DAY
    day = np.floor(days * np.sqrt(rng.random(len(users)))).astype(np.int64)  # usage grows
    return (users + 1).astype(np.int32), (items + 1).astype(np.int32), ratings, START + day * DAY
