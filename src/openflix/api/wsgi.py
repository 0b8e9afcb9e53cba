"""WSGI entry point for Gunicorn: ``gunicorn openflix.api.wsgi:app``.

Each worker gets ready before its first request (see :func:`openflix.api.prepare`) and
keeps the nightly-retrain clock.
"""

from __future__ import annotations

from openflix.api import create_app, prepare
from openflix.jobs.schedule import start_clock

__all__ = ["app"]


app = create_app()
prepare(app)
start_clock(app.extensions["openflix"])
