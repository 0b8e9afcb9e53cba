"""Model versions on S3 (a moto server on loopback) and locally: register, serve, promote."""

from __future__ import annotations

from pathlib import Path

import pytest

from openflix.recs.data import Interactions
from openflix.registry.artifacts import ArtifactStore, S3Artifacts
from openflix.registry.versions import fingerprint, list_versions
from openflix.services.catalog import import_interactions
from openflix.services.platform import Platform
from openflix.services.training import train_version
from openflix.store.db import upgrade
from tests.api.conftest import make_settings


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_trained_version_is_stored_whole_and_served_from_its_artifact(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, store_data: Interactions
) -> None:
    if store == "s3":
        s3: S3Artifacts = request.getfixturevalue("s3_store")
        spec = s3.base_uri
    else:
        spec = str(tmp_path / "artifacts")
    platform = Platform(make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", spec))
    upgrade(platform.engine)
    import_interactions(platform.engine, store_data, ["us"])
    info = train_version(platform.engine, platform.artifacts, "sequential", do_promote=True)
    artifacts: ArtifactStore = platform.artifacts
    assert info.artifact.startswith("s3://" if store == "s3" else "file://")
    assert artifacts.exists(info.artifact)
    from openflix.services.catalog import interactions_from_store

    assert info.data_fingerprint == fingerprint(interactions_from_store(platform.engine))
    served = platform.holder.current()
    assert served.version == info.id and served.model.n_items == 400
    page = platform.home.home(int(store_data.user_ids[0]))
    assert page.version == info.id and page.rows[0]["items"]
    with platform.engine.connect() as conn:
        assert [v.id for v in list_versions(conn)] == [info.id]
    platform.close()
