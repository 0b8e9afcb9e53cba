"""The web page at ``/``: a member's home rows, rendered in the browser from the API."""

from __future__ import annotations

from pathlib import Path

from apiflask import APIBlueprint
from flask import send_from_directory
from flask.typing import ResponseReturnValue

WEB = Path(__file__).resolve().parent.parent / "web"

bp = APIBlueprint(
    "web", __name__, static_folder=str(WEB / "static"), static_url_path="/static", enable_openapi=False
)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The home-rows page (needs a token: in the URL fragment ``#token=…`` or typed in)."""
    return send_from_directory(WEB / "templates", "index.html", mimetype="text/html")
