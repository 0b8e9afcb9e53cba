"""The home page end to end: Gunicorn serves a prepared platform, Debian's Chromium renders the page.

The page must show exactly the rows ``GET /members/{id}/home`` returns for the same token (headings,
reasons, and each title card's name, year and genres), and a wrong token must show an error, not a
blank page.  The browser tests skip when /usr/bin/chromium is absent (``.ci/run`` installs it, and
with ``OPENFLIX_REQUIRE_SERVICES=1`` its absence fails them); the
page and its assets are checked over HTTP regardless.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openflix.cli.platform import gunicorn_argv
from openflix.recs.data import Interactions
from openflix.services.catalog import import_interactions
from openflix.services.platform import Platform
from openflix.services.training import train_version
from openflix.store.db import upgrade
from openflix.store.tokens import create_token
from tests.api.conftest import make_settings
from tests.conftest import REQUIRE_SERVICES
from tests.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SCREENSHOT = Path("/tmp/home.png")


@dataclass
class Site:
    """A running server: its address, a member and that member's token."""

    url: str
    member_id: int
    token: str

    def api(self, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")


def _prepare(tmp: Path, data: Interactions) -> tuple[dict[str, str], int, str]:
    """A database with ``data``, a model in production and a member token; the server's environment."""
    settings = make_settings(f"sqlite:///{tmp / 'openflix.db'}", str(tmp / "artifacts"))
    platform = Platform(settings)
    try:
        upgrade(platform.engine)
        import_interactions(platform.engine, data, settings.region_list)
        train_version(platform.engine, platform.artifacts, settings.model, do_promote=True)
        member_id = int(data.user_ids[0])
        with platform.engine.begin() as conn:
            _, token = create_token(conn, "member", member_id, name="web test")
    finally:
        platform.close()
    (tmp / "metrics").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFLIX_", "GUNICORN_"))}
    env.update(
        OPENFLIX_DATABASE_URL=settings.database_url,
        OPENFLIX_ARTIFACTS=settings.artifacts,
        OPENFLIX_REGIONS=settings.regions,
        OPENFLIX_MODEL=settings.model,
        OPENFLIX_REDIS_URL="",
        OPENFLIX_RETRAIN_AT="",
        OPENFLIX_WORKERS="1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
    )
    return env, member_id, token


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)  # Gunicorn's graceful shutdown
    try:
        server.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(STOP_TIMEOUT)


def _wait_ready(site: Site, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if site.api("/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn was not ready within {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, store_data: Interactions) -> Iterator[Site]:
    """Gunicorn (one worker) serving a prepared SQLite platform on a free port."""
    tmp = tmp_path_factory.mktemp("web")
    env, member_id, token = _prepare(tmp, store_data)
    port = free_port()
    env["OPENFLIX_BIND"] = f"127.0.0.1:{port}"
    log = tmp / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(gunicorn_argv(), env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    try:
        s = Site(f"http://127.0.0.1:{port}", member_id, token)
        _wait_ready(s, server, log)
        yield s
    finally:
        _stop(server)
    assert server.returncode == 0, f"gunicorn stopped with {server.returncode}:\n{log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: the browser tests need Debian's chromium (.ci/run installs it)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; OPENFLIX_REQUIRE_SERVICES=1 makes this a failure", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context (no stored member or token)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


SHOWN = """() => ({
  status: document.getElementById("status").textContent,
  statusClass: document.getElementById("status").className,
  rows: [...document.querySelectorAll("#rows section.row")].map((s) => ({
    id: s.dataset.rowId,
    title: s.querySelector("h2").textContent,
    reason: s.querySelector("p.reason").textContent,
    items: [...s.querySelectorAll("li.title")].map((li) => ({
      id: Number(li.dataset.titleId),
      name: li.querySelector(".name").textContent,
      year: li.querySelector(".year").textContent,
      genres: li.querySelector(".genres").textContent,
    })),
  })),
})"""

SETTLED = """() => {
  const status = document.getElementById("status");
  return document.querySelector("#rows section.row") !== null || status.classList.contains("error");
}"""


def _open(page: Any, site: Site, token: str) -> dict[str, Any]:
    """Open the member's home page with ``token`` and return what it shows once it has loaded."""
    page.goto(f"{site.url}/?member={site.member_id}#token={token}")
    page.wait_for_function(SETTLED, timeout=30_000)
    return page.evaluate(SHOWN)  # type: ignore[no-any-return]


def test_page_and_its_assets_are_served(site: Site) -> None:
    for path, media_type in [
        ("/", "text/html"),
        ("/static/home.js", "text/javascript"),
        ("/static/home.css", "text/css"),
    ]:
        with urllib.request.urlopen(site.url + path, timeout=30) as r:
            assert r.status == 200 and r.headers.get_content_type() == media_type, path


def test_home_page_shows_the_members_rows(site: Site, page: Any) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    status, home = site.api(f"/members/{site.member_id}/home", site.token)
    assert status == 200 and home["rows"], home
    shown = _open(page, site, site.token)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert not errors
    assert shown["statusClass"] != "error", shown["status"]
    region = home["region"].upper()
    assert shown["status"] == f"member {site.member_id} · region {region} · model version {home['version']}"
    expected = [
        {
            "id": row["id"],
            "title": row["title"],
            "reason": row["reason"],
            "items": [
                {
                    "id": t["id"],
                    "name": t["name"],
                    "year": "" if t["year"] is None else str(t["year"]),
                    "genres": ", ".join(t["genres"]),
                }
                for t in row["items"]
            ],
        }
        for row in home["rows"]
    ]
    assert shown["rows"] == expected
    headings = [row["title"] for row in shown["rows"]]
    assert "Top Picks for You" in headings, headings
    assert all(row["reason"] and row["items"] for row in shown["rows"])
    # what a person sees: the first card of the first row, rendered and visible
    first = page.locator("#rows section.row").first.locator("li.title").first
    assert first.is_visible()
    assert first.locator(".name").inner_text() == home["rows"][0]["items"][0]["name"]


def test_a_wrong_token_shows_an_error(site: Site, page: Any) -> None:
    shown = _open(page, site, "not-a-token")
    assert shown["statusClass"] == "error"
    assert shown["status"].startswith("Unauthorized: "), shown["status"]
    assert "token" in shown["status"]
    assert shown["rows"] == []
    assert page.locator("#status").is_visible()


def test_interactive_docs_render_offline(site: Site, page: Any) -> None:
    """``/docs`` loads Swagger UI from the server itself (no CDN) and lists the API's operations."""
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(site.url) else None)
    page.goto(f"{site.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/members/{member_id}/home" in p for p in paths), paths
    assert not outside, outside
