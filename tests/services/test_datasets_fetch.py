"""`openflix data fetch` against a local HTTP server serving zip archives."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from openflix.cli import cli
from openflix.errors import FetchError
from openflix.recs.datasets import load
from openflix.services.datasets import fetch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


def test_fetch_extracts_a_loadable_dataset(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    make_zip(
        root / "ml-100k.zip",
        {
            "ml-100k/u.data": "1\t10\t4\t881250949\n2\t10\t5\t881250950\n",
            "ml-100k/README": "terms of use",
        },
    )
    dest = tmp_path / "datasets"
    folder = fetch("ml-100k", dest, url)
    assert folder == dest / "ml-100k"
    assert load(folder).nnz == 2
    assert (folder / "README").read_text() == "terms of use"


def test_cli_fetch_uses_the_configured_url(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    make_zip(
        root / "ml-latest-small.zip",
        {"ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n1,2,3.5,4\n"},
    )
    monkeypatch.setenv("OPENFLIX_DATASETS_URL", url)
    res = CliRunner().invoke(cli, ["data", "fetch", "ml-latest-small", "--dest", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "ml-latest-small" / "ratings.csv").exists()


def test_missing_archive_and_junk_leave_nothing_behind(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    dest = tmp_path / "d"
    with pytest.raises(FetchError, match="cannot download"):
        fetch("ml-1m", dest, url)
    (root / "ml-1m.zip").write_bytes(b"this is not a zip")
    with pytest.raises(FetchError, match="not a zip archive"):
        fetch("ml-1m", dest, url)
    assert list(dest.iterdir()) == []


def test_unsafe_paths_are_refused(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    make_zip(root / "ml-1m.zip", {"../evil.txt": "x"})
    with pytest.raises(FetchError, match="unsafe path"):
        fetch("ml-1m", tmp_path / "d", url)
    assert not (tmp_path / "evil.txt").exists()


def test_cli_error_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENFLIX_DATASETS_URL", "http://127.0.0.1:9")
    res = CliRunner().invoke(cli, ["data", "fetch", "ml-100k", "--dest", str(tmp_path)])
    assert res.exit_code == 2
    assert "cannot download" in res.stderr
