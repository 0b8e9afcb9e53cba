"""The one contract every recommender model follows.

A model learns item-side parameters in :meth:`Recommender.fit`; everything
member-side is a function of the member's history, so the same code scores a
known member (their training history), a member who is new or whose history
changed (fold-in, :meth:`Recommender.recommend_history`) and a batch of
either.  Subclasses implement only :meth:`_fit` and :meth:`_score`.
"""

from __future__ import annotations

import errno
import inspect
import json
import math
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from openflix.errors import DataError, ModelFileError, NotFittedError
from openflix.recs.data import Interactions, ItemInfo
from openflix.recs.history import History
from openflix.recs.models._topn import top_n

__all__ = [
    "MODELS",
    "Bounds",
    "RatingModel",
    "Recommender",
    "load_model",
    "register",
    "top_n",
]

MODELS: dict[str, type[Recommender]] = {}
"""Model classes by name, filled by :func:`register`."""

FORMAT_VERSION = 1
_BATCH_CELLS = 1 << 24  # scores computed at once: batch rows x n_items


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model reachable by its ``name`` (CLI, saved files)."""
    MODELS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Bounds:
    """The values a numeric hyperparameter may take: ``low``..``high``, each end open or closed.

    ``None`` is always admitted where the hyperparameter's default is ``None``
    (it means "off"); the type is checked elsewhere
    (:func:`openflix.recs.models.check_hyperparameters`).
    """

    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds (NaN never does)."""
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self, whole: bool) -> str:
        """E.g. ``"a whole number >= 1"``, ``"a number > 0"``, ``"a number in (0, 1]"``."""
        kind = "a whole number" if whole else "a number"
        low = f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high == math.inf:
            return f"{kind} {low}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Bounds(low_open=True)
"""A number above 0 (infinity admitted: e.g. a decay that never decays)."""
AT_LEAST_ONE = Bounds(low=1.0)
"""A count of at least one."""


class Recommender(ABC):
    """Base class of openflix recommenders.

    Class attributes
    ----------------
    name:
        Registry name, used by the CLI (``--model NAME``) and in saved files.
    param_grid:
        Values tried for each hyperparameter on the validation split.
    scoring_params:
        Hyperparameters that only change scoring (tuning reuses one fit for them).
    param_bounds:
        Bounds of the numeric hyperparameters that are narrower than the
        ``>= 0`` every one of them keeps (at least one factor, a decay in (0, 1]).
    """

    name: ClassVar[str] = ""
    param_grid: ClassVar[dict[str, Sequence[Any]]] = {}
    scoring_params: ClassVar[frozenset[str]] = frozenset()
    """Hyperparameters used only when scoring: changing them needs no refit."""
    predicts_ratings: ClassVar[bool] = False
    param_bounds: ClassVar[Mapping[str, Bounds]] = {}

    _history: History | None = None
    _user_ids: npt.NDArray[Any] | None = None
    _item_ids: npt.NDArray[Any] | None = None
    _item_info: ItemInfo | None = None

    # ------------------------------------------------------------------ params
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The hyperparameters (the constructor's named arguments) with their default values."""
        return {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments with their current values."""
        return {k: getattr(self, k) for k in self.defaults()}

    def clone(self, **changes: Any) -> Self:
        """A new, unfitted model with the same parameters except ``changes``."""
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def param_problem(cls, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """The first of ``params`` out of :attr:`param_bounds` as ``(name, what was expected)``, else None.

        ``params`` holds every hyperparameter (the constructor's defaults
        filled in); values of another type are left to the type check.
        Subclasses add rules that tie two hyperparameters together.
        """
        defaults = cls.defaults()
        for key, bounds in cls.param_bounds.items():
            value = params.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and not bounds.admits(value):
                default = defaults[key]
                return key, bounds.describe(isinstance(default, int) and not isinstance(default, bool))
        return None

    # ------------------------------------------------------------------ fit
    def fit(self, data: Interactions) -> Self:
        """Learn from ``data``; returns ``self``.

        Raises :class:`~openflix.errors.DataError` when a hyperparameter is
        out of its bounds (:meth:`param_problem`) or ``data`` is empty.
        """
        params = self.get_params()
        if (problem := type(self).param_problem(params)) is not None:
            key, expected = problem
            raise DataError(f"{self.name} hyperparameter {key}: expected {expected}, got {params[key]!r}")
        if data.nnz == 0:
            raise DataError("cannot fit on an empty dataset")
        self._history = History.from_interactions(data)
        self._user_ids = data.user_ids
        self._item_ids = data.item_ids
        self._item_info = data.item_info
        self._fit(data, self._history)
        return self

    @abstractmethod
    def _fit(self, data: Interactions, history: History) -> None:
        """Learn item-side parameters."""

    @abstractmethod
    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Scores ``(history.n_rows, n_items)``; ``users[r]`` is the known member of row ``r`` or -1."""

    @property
    def is_fitted(self) -> bool:
        return self._history is not None

    def _require_fit(self) -> History:
        if self._history is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return self._history

    @property
    def n_users(self) -> int:
        return self._require_fit().n_rows

    @property
    def n_items(self) -> int:
        return self._require_fit().n_items

    @property
    def user_ids(self) -> npt.NDArray[Any]:
        self._require_fit()
        assert self._user_ids is not None
        return self._user_ids

    @property
    def item_ids(self) -> npt.NDArray[Any]:
        self._require_fit()
        assert self._item_ids is not None
        return self._item_ids

    @property
    def item_info(self) -> ItemInfo | None:
        return self._item_info

    @property
    def history(self) -> History:
        """The training history: one row per known member."""
        return self._require_fit()

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        users: int | npt.ArrayLike,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        allow: npt.ArrayLike | None = None,
        deny: npt.ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top ``n`` titles for known members.

        Parameters
        ----------
        users:
            A member index or an array of ``b`` member indices.
        exclude_seen:
            Leave out titles in the member's training history.
        allow, deny:
            Title indices to restrict to / to leave out.

        Returns
        -------
        items, scores:
            ``(b, n)`` arrays (``(n,)`` for a single member), best first; a row
            with fewer candidates than ``n`` is padded with -1 / -inf.
        """
        history = self._require_fit()
        single = np.ndim(users) == 0
        idx = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= history.n_rows):
            raise DataError(f"member indices must be in 0..{history.n_rows - 1}")
        items, scores = self._recommend_rows(history.rows(idx), idx, n, exclude_seen, allow, deny)
        return (items[0], scores[0]) if single else (items, scores)

    def recommend_history(
        self,
        items: npt.ArrayLike,
        n: int = 10,
        *,
        times: npt.ArrayLike | None = None,
        values: npt.ArrayLike | None = None,
        exclude_seen: bool = True,
        allow: npt.ArrayLike | None = None,
        deny: npt.ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top ``n`` titles for a member known only by their events (fold-in, no retraining).

        ``items`` are title indices in time order (or ordered by ``times``,
        Unix seconds); ``values`` are their ratings or weights.  Returns
        ``(n,)`` items and scores.
        """
        history = History.from_items(items, self.n_items, times=times, values=values)
        out_items, out_scores = self._recommend_rows(history, np.array([-1]), n, exclude_seen, allow, deny)
        return out_items[0], out_scores[0]

    def recommend_batch(
        self,
        history: History,
        users: npt.NDArray[np.int64] | None = None,
        n: int = 10,
        *,
        exclude_seen: bool = True,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top ``n`` for every row of a history (``users`` = known member per row, or -1)."""
        self._require_fit()
        if users is None:
            users = np.full(history.n_rows, -1, dtype=np.int64)
        return self._recommend_rows(history, users, n, exclude_seen, None, None)

    def _recommend_rows(
        self,
        history: History,
        users: npt.NDArray[np.int64],
        n: int,
        exclude_seen: bool,
        allow: npt.ArrayLike | None,
        deny: npt.ArrayLike | None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        n_items = self.n_items
        mask = None
        if allow is not None:
            mask = np.ones(n_items, dtype=bool)
            mask[np.asarray(allow, dtype=np.int64)] = False
        if deny is not None:
            mask = np.zeros(n_items, dtype=bool) if mask is None else mask
            mask[np.asarray(deny, dtype=np.int64)] = True
        out_items = np.empty((history.n_rows, n), dtype=np.int64)
        out_scores = np.empty((history.n_rows, n), dtype=np.float32)
        for lo, hi in _batches(history.n_rows, n_items):
            part = history.rows(np.arange(lo, hi))
            scores = np.array(self._score(part, users[lo:hi]), dtype=np.float32, copy=True)
            if exclude_seen:
                seen = part.matrix(binary=True)
                rr, cc = seen.nonzero()
                scores[rr, cc] = -np.inf
            if mask is not None:
                scores[:, mask] = -np.inf
            out_items[lo:hi], out_scores[lo:hi] = top_n(scores, n)
        return out_items, out_scores

    def score(self, history: History, users: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float32]:
        """Raw scores ``(history.n_rows, n_items)`` (higher is better)."""
        self._require_fit()
        if users is None:
            users = np.full(history.n_rows, -1, dtype=np.int64)
        return self._score(history, users)

    # ------------------------------------------------------------------ similar
    def similar_items(self, item: int, n: int = 10) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The ``n`` titles most similar to title index ``item`` (itself excluded)."""
        history = self._require_fit()
        if not 0 <= item < history.n_items:
            raise DataError(f"title index must be in 0..{history.n_items - 1}")
        sims = np.array(self._similar(item), dtype=np.float32, copy=True)
        sims[item] = -np.inf
        items, scores = top_n(sims[None, :], n)
        return items[0], scores[0]

    def _similar(self, item: int) -> npt.NDArray[np.float32]:
        """Similarity of ``item`` to every title ``(n_items,)``; default: cosine of co-occurrence."""
        cache = self.__dict__.setdefault("_cooc", None)
        if cache is None:
            x = self._require_fit().matrix(binary=True).tocsc()
            norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()) + 1e-9
            cache = (x, norms)
            self.__dict__["_cooc"] = cache
        x, norms = cache
        col = x[:, item]
        co = np.asarray((x.T @ col).todense()).ravel()
        return np.asarray(co / (norms * norms[item]), dtype=np.float32)

    # ------------------------------------------------------------------ persist
    def _state(self) -> dict[str, npt.NDArray[Any]]:
        """Learned arrays to save (subclasses extend)."""
        return {}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:  # noqa: B027
        """Restore learned arrays (subclasses extend)."""

    def save(self, path: str | Path) -> Path:
        """Write the model, its training history and id maps to one ``.npz`` file."""
        history = self._require_fit()
        p = Path(path)
        meta = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "params": self.get_params(),
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "h_indptr": history.indptr,
            "h_items": history.items,
            "h_values": history.values,
            "h_times": history.times,
            "user_ids": _plain(self.user_ids),
            "item_ids": _plain(self.item_ids),
        }
        if self._item_info is not None:
            arrays["titles"] = self._item_info.titles.astype(str)
            arrays["genres"] = self._item_info.genres.astype(str)
        for k, v in self._state().items():
            arrays["s_" + k] = v
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        if p.is_dir():  # checked first: the rename below would name the temporary file instead
            raise IsADirectoryError(
                errno.EISDIR, "is a directory, expected a model file name such as model.npz", str(p)
            )
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        try:
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            tmp.replace(p)
        finally:
            tmp.unlink(missing_ok=True)  # after a failure: no half-written file left beside the model
        return p


class RatingModel(Recommender):
    """A model that also predicts ratings (RMSE/MAE are measured on it)."""

    predicts_ratings: ClassVar[bool] = True

    @abstractmethod
    def predict(self, users: npt.ArrayLike, items: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Predicted ratings ``(m,)`` for member and title index pairs (-1: unknown)."""


def load_model(path: str | Path) -> Recommender:
    """Read a model written by :meth:`Recommender.save`."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file; train one with 'openflix recs train'")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        if not isinstance(meta, dict):
            raise ValueError(f"its meta is {type(meta).__name__}, not an object")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        # numpy's own words for pickled arrays advise loading them unsafely: not advice to pass on
        why = "it holds pickled Python objects" if "allow_pickle" in str(exc) else str(exc)
        raise ModelFileError(f"{p}: not an openflix model file ({why})") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise ModelFileError(f"{p}: model file format {meta.get('format')}, expected {FORMAT_VERSION}")
    cls = MODELS.get(meta.get("model", ""))
    if cls is None:
        raise ModelFileError(f"{p}: unknown model {meta.get('model')!r}; known: {', '.join(MODELS)}")
    missing = [k for k in _SAVED if k not in arrays]
    if missing:
        raise ModelFileError(f"{p}: not a whole openflix model file (no {', '.join(missing)})")
    try:
        model = cls(**meta.get("params", {}))
        model._history = History(
            indptr=arrays["h_indptr"],
            items=arrays["h_items"],
            values=arrays["h_values"],
            times=arrays["h_times"],
            n_items=len(arrays["item_ids"]),
        )
        model._user_ids = arrays["user_ids"]
        model._item_ids = arrays["item_ids"]
        if "titles" in arrays:
            model._item_info = ItemInfo(arrays["titles"].astype(object), arrays["genres"].astype(object))
        model._set_state({k[2:]: v for k, v in arrays.items() if k.startswith("s_")})
    except (TypeError, KeyError, ValueError, IndexError) as exc:  # parameters or arrays of another model
        why = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{p}: a {cls.name!r} model file that openflix cannot read ({why})") from exc
    return model


_SAVED = ("h_indptr", "h_items", "h_values", "h_times", "user_ids", "item_ids")
"""Arrays every saved model holds (beside its own state, ``s_*``)."""


def _plain(ids: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return ids if ids.dtype.kind in "iuf" else ids.astype(str)


def _batches(n_rows: int, n_items: int) -> Iterator[tuple[int, int]]:
    step = max(1, _BATCH_CELLS // max(1, n_items))
    for lo in range(0, n_rows, step):
        yield lo, min(n_rows, lo + step)
