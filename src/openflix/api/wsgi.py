"""WSGI entry point for Gunicorn: ``gunicorn openflix.api.wsgi:app``.

Each worker gets ready before its first request (see :func:`openflix.api.prepare`) and
keeps the nightly-retrain clock and the CDN fill clock (each site filled in its local window).
"""

from __future__ import annotations

from openflix.api import create_app, prepare
from openflix.jobs.schedule import start_clock
from openflix.services.fill import start_fill_clock

__all__ = ["app"]


app = create_app()
prepare(app)
start_clock(app.extensions["openflix"])
start_fill_clock(app.extensions["openflix"])
