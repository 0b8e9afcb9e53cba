"""Shared fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The ``OPENFLIX_*`` variables of a fresh embedded setup in ``tmp_path`` (set for the test)."""
    values = {
        "OPENFLIX_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "OPENFLIX_ARTIFACTS": str(tmp_path / "artifacts"),
        "OPENFLIX_REDIS_URL": "",
        "OPENFLIX_RETRAIN_AT": "off",
        "OPENFLIX_URL_KEYS": "k1:" + "cd" * 32,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values
