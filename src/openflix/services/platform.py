"""The platform a serving or worker process runs on: database, artifacts, models, jobs.

:class:`Platform` wires the adapters chosen by :class:`~openflix.settings.Settings`
(SQLite or PostgreSQL, a directory or S3, in-process jobs or RQ on Redis)
once per process; faces (API, CLI, worker) take what they need from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from openflix.registry.artifacts import ArtifactStore, open_artifacts
from openflix.services.home import HomeService
from openflix.services.serving import ModelHolder
from openflix.settings import Settings
from openflix.store.db import connect
from openflix.store.reader import HotReader

if TYPE_CHECKING:
    from openflix.jobs.runner import JobRunner
    from openflix.services.steering import SteeringService

__all__ = ["Platform"]


@dataclass
class Platform:
    """Adapters of one process, created lazily from settings."""

    settings: Settings = field(default_factory=Settings.from_env)

    @cached_property
    def engine(self) -> Engine:
        return connect(self.settings.database_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return open_artifacts(self.settings.artifacts)

    @cached_property
    def holder(self) -> ModelHolder:
        return ModelHolder(self.engine, self.artifacts, poll=self.settings.model_poll)

    @cached_property
    def steering(self) -> SteeringService:
        from openflix.services.steering import SteeringService

        return SteeringService(self.engine, self.settings, reader=self.reader)

    @cached_property
    def home(self) -> HomeService:
        return HomeService(self.engine, self.holder, reader=self.reader)

    @cached_property
    def reader(self) -> HotReader:
        """The small reads every home and steering request makes (see :mod:`openflix.store.reader`)."""
        return HotReader(self.engine)

    def close(self) -> None:
        """Close the database pool (idle connections); the platform may be used again afterwards."""
        if "reader" in self.__dict__:
            self.reader.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def jobs(self) -> JobRunner:
        from openflix.jobs.runner import open_runner

        return open_runner(self)
