"""Model versions: immutable records of trained models, and the promotion log.

A version is registered only after its artifact is completely stored, in
one transaction, so a crash at any point leaves either no version or a
whole one.  The newest row of the promotion log names the version in
production; a rollback promotes the version that was in production before.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, insert, select

from openflix.errors import ConflictError, NotFoundError
from openflix.recs.data import Interactions
from openflix.recs.models.base import Recommender
from openflix.registry.artifacts import ArtifactStore
from openflix.store.db import translating
from openflix.store.schema import ModelVersion, Promotion

__all__ = [
    "VersionInfo",
    "fingerprint",
    "get_version",
    "list_versions",
    "production_version",
    "promote",
    "register",
    "rollback",
]


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as the API and CLI show it."""

    id: int
    model: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_fingerprint: str
    n_events: int
    artifact: str
    created_at: int
    in_production: bool = False


def fingerprint(data: Interactions) -> str:
    """SHA-256 over the (member, title, value, time) arrays: equal data, equal fingerprint."""
    h = hashlib.sha256()
    for arr in (data.user_ids[data.users], data.item_ids[data.items], data.ratings, data.timestamps):
        h.update(np.ascontiguousarray(np.asarray(arr).astype(np.float64)).tobytes())
    return h.hexdigest()


def _info(row: Any, current: int | None) -> VersionInfo:
    return VersionInfo(
        row.id,
        row.model,
        dict(row.params),
        dict(row.metrics),
        row.data_fingerprint,
        row.n_events,
        row.artifact,
        row.created_at,
        row.id == current,
    )


def register(
    engine: Engine,
    artifacts: ArtifactStore,
    model: Recommender,
    *,
    name: str,
    metrics: dict[str, Any],
    data: Interactions,
) -> VersionInfo:
    """Store ``model``'s artifact, then record it as a new version (never half of one)."""
    created = int(time.time())
    fp = fingerprint(data)
    with tempfile.TemporaryDirectory(prefix="openflix-model-") as tmp:
        path = model.save(Path(tmp) / "model.npz")
        key = f"{name}/{created}-{fp[:12]}-{path.stat().st_size}.npz"
        uri = artifacts.put(key, path)
    with translating(engine), engine.begin() as conn:
        result = conn.execute(
            insert(ModelVersion).values(
                model=name,
                params={k: _plain(v) for k, v in model.get_params().items()},
                metrics=metrics,
                data_fingerprint=fp,
                n_events=data.nnz,
                artifact=uri,
                created_at=created,
            )
        )
        version_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return get_version(conn, version_id)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def production_version(conn: Connection) -> int | None:
    """The id of the version in production (``None`` before the first promotion)."""
    return conn.scalar(select(Promotion.version_id).order_by(Promotion.id.desc()).limit(1))


def get_version(conn: Connection, version_id: int) -> VersionInfo:
    """One version; :class:`NotFoundError` when there is none with that id."""
    row = conn.execute(select(ModelVersion.__table__).where(ModelVersion.id == version_id)).first()
    if row is None:
        raise NotFoundError(f"model version {version_id} does not exist")
    return _info(row, production_version(conn))


def list_versions(conn: Connection, *, limit: int = 50) -> list[VersionInfo]:
    """The newest versions first."""
    current = production_version(conn)
    rows = conn.execute(select(ModelVersion.__table__).order_by(ModelVersion.id.desc()).limit(limit)).all()
    return [_info(r, current) for r in rows]


def promote(conn: Connection, version_id: int, *, action: str = "promote") -> VersionInfo:
    """Put ``version_id`` in production (serving processes switch to it within seconds)."""
    info = get_version(conn, version_id)
    conn.execute(insert(Promotion).values(version_id=version_id, action=action, at=int(time.time())))
    return replace(info, in_production=True)


def rollback(conn: Connection) -> VersionInfo:
    """Put back the version that was in production before the current one."""
    log = conn.execute(select(Promotion.version_id).order_by(Promotion.id.desc())).scalars().all()
    if not log:
        raise ConflictError("nothing to roll back: no version was ever promoted")
    current = log[0]
    previous = next((v for v in log[1:] if v != current), None)
    if previous is None:
        raise ConflictError(f"nothing to roll back to: version {current} is the only one ever promoted")
    return promote(conn, previous, action="rollback")
