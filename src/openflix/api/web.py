"""The web page at ``/``: a member's home rows, rendered in the browser from the API."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from apiflask import APIBlueprint
from flask import send_from_directory
from flask.typing import ResponseReturnValue

WEB = Path(__file__).resolve().parent.parent / "web"

bp = APIBlueprint(
    "web", __name__, static_folder=str(WEB / "static"), static_url_path="/static", enable_openapi=False
)


SWAGGER_UI = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
"""Swagger UI's files, from the flask-swagger-ui package: ``/docs`` works without reaching a CDN."""


@bp.get("/static/swagger-ui/<path:name>")
def swagger_ui(name: str) -> ResponseReturnValue:
    """Swagger UI's scripts and styles for ``/docs``."""
    return send_from_directory(SWAGGER_UI, name)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The home-rows page (needs a token: in the URL fragment ``#token=…`` or typed in)."""
    return send_from_directory(WEB / "templates", "index.html", mimetype="text/html")
