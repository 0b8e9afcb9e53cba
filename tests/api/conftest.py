"""A served platform per database backend: data imported, a model in production, tokens of every role."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from openflix.api import create_app
from openflix.recs.data import Interactions
from openflix.services.catalog import import_interactions
from openflix.services.platform import Platform
from openflix.services.training import train_version
from openflix.settings import Settings
from openflix.store.db import upgrade
from openflix.store.tokens import create_token
from tests.conftest import fresh_postgres


@dataclass
class Served:
    """What an API test needs: the client, the platform, tokens, and two members to tell apart."""

    client: FlaskClient
    platform: Platform
    admin: str
    operator: str
    member: str
    member_id: int
    other: str
    other_id: int
    backend: str

    def get(self, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, headers=headers, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, headers=headers, **kw)

    def put(self, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.put(path, headers=headers, **kw)


@contextmanager
def derived_client(served: Served, **changes: Any) -> Iterator[FlaskClient]:
    """A client of a second app on the same database, with some settings changed."""
    platform = Platform(dataclasses.replace(served.platform.settings, **changes))
    try:
        yield create_app(platform=platform).test_client()
    finally:
        platform.close()


def make_settings(database_url: str, artifacts: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "artifacts": artifacts,
        "redis_url": "",
        "regions": "us,gb",
        "model": "sequential",
        "model_poll": 0.05,
        "retrain_at": "off",
        "rate_limit": "100000/minute",
        "url_keys": "test:" + "ab" * 32,
    }
    values.update(changes)
    return Settings(**values)


def serve_platform(settings: Settings, data: Interactions, backend: str) -> Served:
    platform = Platform(settings)
    upgrade(platform.engine)
    import_interactions(platform.engine, data, settings.region_list)
    train_version(platform.engine, platform.artifacts, settings.model, do_promote=True)
    app = create_app(platform=platform)
    app.config["TESTING"] = True
    ids = [int(i) for i in data.user_ids[:2]]
    with platform.engine.begin() as conn:
        _, admin = create_token(conn, "admin")
        _, operator = create_token(conn, "operator")
        _, member = create_token(conn, "member", ids[0])
        _, other = create_token(conn, "member", ids[1])
    return Served(app.test_client(), platform, admin, operator, member, ids[0], other, ids[1], backend)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, store_data: Interactions
) -> Iterator[Served]:
    """One platform per backend per test module (tests use their own members/titles where they write)."""
    tmp = tmp_path_factory.mktemp(f"served-{request.param}")
    url = f"sqlite:///{tmp / 'openflix.db'}" if request.param == "sqlite" else fresh_postgres()
    s = serve_platform(make_settings(url, str(tmp / "artifacts")), store_data, request.param)
    yield s
    s.platform.close()
