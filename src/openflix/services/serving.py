"""Serving models: the production version held in memory, switched without a restart.

Each serving process keeps a :class:`ModelHolder`.  At most every
``poll`` seconds it reads which version is in production; when that changed,
a background thread downloads and loads the new version while requests go on
being answered by the old one, then swaps it in with one assignment — so a
promotion or a rollback never fails a request.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from openflix.errors import ModelError
from openflix.recs.models import load_model
from openflix.recs.models.base import Recommender
from openflix.recs.rows import RowContext
from openflix.registry.artifacts import ArtifactStore
from openflix.registry.versions import get_version, production_version
from openflix.store.db import translating

__all__ = ["ModelHolder", "Served"]

KEEP_LOADED = 3
"""Versions kept in memory per process (production plus A/B cells)."""


@dataclass(frozen=True)
class Served:
    """A loaded model version with what serving needs precomputed."""

    version: int
    model: Recommender
    context: RowContext
    index: pd.Index

    def indices(self, title_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Model indices of title ids (-1 for titles the model does not know)."""
        return np.asarray(self.index.get_indexer(pd.Index(np.asarray(title_ids))), dtype=np.int64)


class ModelHolder:
    """The models a serving process answers with; thread-safe."""

    def __init__(self, engine: Engine, artifacts: ArtifactStore, *, poll: float = 2.0) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self.poll = poll
        self._loaded: OrderedDict[int, Served] = OrderedDict()
        self._production: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._loading: set[int] = set()
        self._cache = Path(tempfile.mkdtemp(prefix="openflix-serving-"))
        weakref.finalize(self, shutil.rmtree, self._cache, True)

    @property
    def production(self) -> int | None:
        """The version id this process believes is in production."""
        return self._production

    def current(self) -> Served:
        """The production model; loads it on first use, follows promotions afterwards."""
        now = time.monotonic()
        if now - self._checked >= self.poll or self._production is None:
            self._checked = now
            with translating(self.engine), self.engine.connect() as conn:
                wanted = production_version(conn)
            if wanted is None:
                raise ModelError(
                    "no model version is in production yet: train one with `openflix models train --promote`"
                )
            if wanted != self._production:
                if wanted in self._loaded or self._production is None:
                    self.get(wanted)
                    self._production = wanted
                else:
                    self._load_in_background(wanted)
        assert self._production is not None
        return self.get(self._production)

    def get(self, version: int) -> Served:
        """A given version, loaded (synchronously) if it is not in memory."""
        served = self._loaded.get(version)
        if served is not None:
            return served
        served = self._load(version)
        with self._lock:
            self._loaded[version] = served
            while len(self._loaded) > KEEP_LOADED:
                oldest = next(iter(self._loaded))
                if oldest == self._production:
                    self._loaded.move_to_end(oldest)
                    oldest = next(iter(self._loaded))
                self._loaded.pop(oldest)
        return served

    def is_loaded(self) -> bool:
        """True once a production model is in memory."""
        return self._production is not None and self._production in self._loaded

    def _load(self, version: int) -> Served:
        with translating(self.engine), self.engine.connect() as conn:
            info = get_version(conn, version)
        path = self.artifacts.get(info.artifact, self._cache / f"v{version}.npz")
        try:
            model = load_model(path)
        finally:
            path.unlink(missing_ok=True)
        return Served(version, model, RowContext.of(model), pd.Index(np.asarray(model.item_ids)))

    def _load_in_background(self, version: int) -> None:
        with self._lock:
            if version in self._loading:
                return
            self._loading.add(version)

        def work() -> None:
            try:
                self.get(version)
                self._production = version
            except Exception:
                self._checked = 0.0
            finally:
                with self._lock:
                    self._loading.discard(version)

        threading.Thread(target=work, name=f"load-model-{version}", daemon=True).start()
