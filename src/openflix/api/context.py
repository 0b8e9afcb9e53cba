"""Access to the process's :class:`~openflix.services.platform.Platform` from a request."""

from __future__ import annotations

from flask import current_app

from openflix.services.platform import Platform

__all__ = ["platform"]


def platform() -> Platform:
    """The platform of the running app."""
    return current_app.extensions["openflix"]  # type: ignore[no-any-return]
