"""WSGI entry point for Gunicorn: ``gunicorn openflix.api.wsgi:app``.

Each worker loads the production model before it takes its first request
(when one is promoted), and keeps the nightly-retrain clock.
"""

from __future__ import annotations

import logging

from openflix.api import create_app
from openflix.errors import OpenflixError
from openflix.jobs.schedule import start_clock

app = create_app()
_platform = app.extensions["openflix"]
try:
    _platform.home.warm_up()
except OpenflixError as exc:  # no model yet: /readyz says so until one is promoted
    logging.getLogger("openflix.api").warning("not warmed up: %s", exc)
start_clock(_platform)
