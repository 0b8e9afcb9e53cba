"""In-memory rate-limit windows: per key, a window from the key's first request, no background threads."""

from __future__ import annotations

import threading

import pytest

from openflix.api.ratelimit import MemoryWindows, RateLimiter
from openflix.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_amount_per_window_then_waits_for_the_next() -> None:
    clock = Clock()
    windows = MemoryWindows(3, 60.0, clock)
    assert [windows.hit("a") for _ in range(4)] == [True, True, True, False]
    assert windows.hit("b")  # every key has its own window
    clock.now += 30.0
    assert not windows.hit("a")
    assert windows.reset_in("a") == pytest.approx(30.0)
    clock.now += 30.0
    assert windows.hit("a")  # a new window from this request
    assert windows.reset_in("a") == pytest.approx(60.0)
    assert windows.reset_in("never seen") == 0.0


def test_old_windows_are_dropped_as_requests_come() -> None:
    clock = Clock()
    windows = MemoryWindows(1, 10.0, clock)
    for k in range(1_000):
        windows.hit(f"token-{k}")
    clock.now += 11.0
    windows.hit("late")
    assert len(windows._windows) == 1


def test_counting_starts_no_thread() -> None:
    limiter = RateLimiter("100000/minute")
    before = threading.active_count()
    for k in range(2_000):
        assert limiter.hit(f"t{k % 7}")
    assert threading.active_count() == before


def test_threads_share_one_count() -> None:
    windows = MemoryWindows(1_000, 60.0)
    allowed: list[bool] = []

    def work() -> None:
        allowed.extend(windows.hit("shared") for _ in range(300))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1_000


def test_a_limit_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENFLIX_RATE_LIMIT='lots'"):
        RateLimiter("lots")
