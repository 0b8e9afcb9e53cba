"""The home service's per-process caches: stale values renew in the background; ``forget`` drops all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from openflix.services.home import HomeService


def _wait(predicate: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_renewal_running_when_the_caches_are_forgotten_does_not_bring_its_value_back(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'home.db'}")
    home = HomeService(engine, holder=None, ttl=0.0)  # type: ignore[arg-type]
    started, release = threading.Event(), threading.Event()
    reads: list[str] = []

    def slow_read() -> str:  # a renewal that read the store before the change below
        started.set()
        release.wait(5)
        reads.append("before")
        return "before"

    assert home._cached("k", lambda: "first") == ("first", 0)
    assert home._cached("k", slow_read) == ("first", 0)  # stale: served while a thread renews it
    assert started.wait(5)
    home.forget()  # e.g. after a change: nothing read before this may come back
    release.set()
    _wait(lambda: reads and "k" not in home._renewing)
    assert home._cached("k", lambda: "after") == ("after", 0)


def test_a_renewal_replaces_a_stale_value_and_counts_a_generation_only_when_it_changed(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'home.db'}")
    home = HomeService(engine, holder=None, ttl=0.0)  # type: ignore[arg-type]
    assert home._cached("k", lambda: [1]) == ([1], 0)
    home._cached("k", lambda: [1])
    _wait(lambda: "k" not in home._renewing)
    home.ttl = 60.0
    assert home._cached("k", lambda: [9]) == ([1], 0)  # renewed, the same: same generation
    home.ttl = 0.0
    home._cached("k", lambda: [2])
    _wait(lambda: "k" not in home._renewing)
    home.ttl = 60.0
    assert home._cached("k", lambda: [9]) == ([2], 1)


def test_a_value_read_while_the_caches_are_forgotten_is_used_once_not_kept(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'home.db'}")
    home = HomeService(engine, holder=None, ttl=60.0)  # type: ignore[arg-type]

    def read_then_forgotten() -> str:  # the first read of a key races a forget
        home.forget()
        return "read before the forget"

    assert home._cached("k", read_then_forgotten) == ("read before the forget", 0)
    assert home._cached("k", lambda: "after") == ("after", 0)
