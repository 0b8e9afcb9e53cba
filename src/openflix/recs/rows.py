"""The home page as rows, each with a title and a reason — a pure function of model and history.

:func:`home_rows` scores a member's history once (fold-in: a new event counts
at once, with no retraining) and cuts the scores into the rows a streaming
home page shows:

=====================  ==========================================================
row id                 what it holds
=====================  ==========================================================
``continue-watching``  titles started and not finished, newest first (given)
``top-picks``          the personalized ranking
``because:<title>``    titles most similar to one of the member's recent titles
``top10``              the region's most watched titles of the last day (given)
``genre:<name>``       the personalized ranking within a genre the member favours
=====================  ==========================================================

Every row holds only titles in ``available`` (the member's region), and the
personalized rows leave out what the member has seen.  Titles are item
indices of the model (``0..n_items-1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from openflix.recs.history import History
from openflix.recs.models._topn import top_n_row
from openflix.recs.models.base import Recommender

__all__ = ["HomeRow", "RowContext", "home_rows"]


@dataclass(frozen=True)
class HomeRow:
    """One row of the home page: a stable id, its heading, why it is there, and its titles."""

    id: str
    title: str
    reason: str
    items: tuple[int, ...]


@dataclass(frozen=True)
class RowContext:
    """What rows need of a model beyond its scores, computed once per loaded model.

    Attributes
    ----------
    genre_names:
        ``(g,)`` genre names.
    item_genres:
        ``(n_items, g)`` bool array: which genres each title has.
    popularity:
        ``(n_items,)`` float32 training events per title (the cold-start ranking).
    """

    genre_names: tuple[str, ...]
    item_genres: npt.NDArray[np.bool_]
    popularity: npt.NDArray[np.float32]
    names: npt.NDArray[np.object_] = field(repr=False)

    @classmethod
    def of(cls, model: Recommender) -> RowContext:
        history = model.history
        n = model.n_items
        popularity = np.bincount(history.items, minlength=n).astype(np.float32)
        info = model.item_info
        genres = info.genres if info is not None else np.full(n, "", dtype=object)
        names = info.titles if info is not None else np.asarray(model.item_ids).astype(str).astype(object)
        split = [str(g).split("|") if g else [] for g in genres]
        vocab = sorted({g for gs in split for g in gs if g and g != "(no genres listed)"})
        col = {g: j for j, g in enumerate(vocab)}
        rows = np.repeat(np.arange(n), [len(gs) for gs in split])
        cols = np.array([col.get(g, -1) for gs in split for g in gs], dtype=np.int64)
        keep = cols >= 0
        matrix = np.zeros((n, len(vocab)), dtype=bool)
        matrix[rows[keep], cols[keep]] = True
        return cls(tuple(vocab), matrix, popularity, names)


def _best(scores: npt.NDArray[np.float32], n: int) -> tuple[int, ...]:
    """Indices of the ``n`` highest finite scores, best first (ties: lower index first)."""
    items, _ = top_n_row(scores, n)
    return tuple(int(i) for i in items[items >= 0])


def home_rows(
    model: Recommender,
    context: RowContext,
    history_items: npt.ArrayLike,
    history_times: npt.ArrayLike | None,
    available: npt.NDArray[np.bool_],
    *,
    continue_watching: npt.ArrayLike = (),
    top_region: npt.ArrayLike = (),
    region: str = "",
    n: int = 10,
    because: int = 2,
    genre_rows: int = 2,
) -> list[HomeRow]:
    """The member's home rows.

    Parameters
    ----------
    history_items, history_times:
        ``(h,)`` title indices the member watched or rated and their Unix times.
    available:
        ``(n_items,)`` bool: titles available in the member's region.
    continue_watching:
        Title indices started and not finished, newest first.
    top_region:
        Title indices of the region's top titles today, best first.
    n:
        Titles per row.
    because, genre_rows:
        How many "Because You Watched" and genre rows to build.
    """
    items = np.asarray(history_items, dtype=np.int64)
    times = None if history_times is None else np.asarray(history_times, dtype=np.int64)
    rows: list[HomeRow] = []

    cw = [int(i) for i in np.asarray(continue_watching, dtype=np.int64) if available[i]][:n]
    if cw:
        rows.append(
            HomeRow(
                "continue-watching", "Continue Watching", "you started these and did not finish", tuple(cw)
            )
        )

    if items.size:
        scores = model.score(History.from_items(items, model.n_items, times=times))[0].astype(np.float32)
        reason = "ranked for you from everything you watched"
    else:
        scores = np.log1p(context.popularity)
        reason = "popular with members (watch a few titles to personalize this row)"
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[~available] = -np.inf
    scores[items] = -np.inf
    rows.append(HomeRow("top-picks", "Top Picks for You", reason, _best(scores, n)))

    recent = list(dict.fromkeys(items[::-1].tolist()))[:because]
    for anchor in recent:
        sims, _ = model.similar_items(int(anchor), n * 4 + len(items))
        sims = sims[sims >= 0]
        picked = sims[np.isfinite(scores[sims])][:n].tolist()
        if picked:
            name = str(context.names[anchor])
            rows.append(
                HomeRow(
                    f"because:{_plain(model.item_ids[anchor])}",
                    f"Because You Watched {name}",
                    f"titles like {name}, which you watched",
                    tuple(picked),
                )
            )

    top = [int(i) for i in np.asarray(top_region, dtype=np.int64) if available[i]][:n]
    if top:
        where = f" in {region.upper()}" if region else ""
        rows.append(
            HomeRow("top10", f"Top 10{where} Today", f"the most watched titles{where} today", tuple(top))
        )

    if items.size and context.genre_names:
        affinity = context.item_genres[items[-50:]].sum(axis=0)
        for g in np.argsort(-affinity, kind="stable")[:genre_rows]:
            if affinity[g] <= 0:
                break
            in_genre = context.item_genres[:, g]
            picked_g = _best(np.where(in_genre, scores, -np.inf).astype(np.float32), n)
            if picked_g:
                name = context.genre_names[g]
                rows.append(
                    HomeRow(f"genre:{name}", f"{name} Picks for You", f"you watch a lot of {name}", picked_g)
                )
    return rows


def _plain(value: object) -> object:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
