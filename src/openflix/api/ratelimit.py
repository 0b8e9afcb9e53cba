"""Rate limits per token, on the ``limits`` library: a fixed window per key, in Redis or in memory.

The same counting as Flask-Limiter (which is built on ``limits``), called
directly from one ``before_request`` hook: Flask-Limiter's per-request
bookkeeping (blueprint scopes, decorated limits, response headers) cost
about 0.12 ms of a 0.35 ms cached home request, and openflix has one limit
for every limited route.

With Redis configured the windows are shared by every process; while Redis
cannot be reached, each process counts in memory (one log line when that
starts) and goes back to Redis when it answers again.

In memory, the counting is :class:`MemoryWindows`, not ``limits``'
``MemoryStorage``: that one starts a new timer thread every 10 ms while
requests come in (about 75 threads a second under load here), and their
wake-ups cost every limited request; here stale windows are dropped in
passing, at most once per window length.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from openflix.errors import ConfigError

__all__ = ["MemoryWindows", "RateLimiter"]

log = logging.getLogger("openflix.api")


class MemoryWindows:
    """Fixed windows per key in this process's memory: a window starts at its key's first request.

    Parameters
    ----------
    amount:
        Requests allowed per window.
    seconds:
        Window length, in seconds.
    clock:
        A clock in seconds that never goes back (``time.monotonic``; replaceable for tests).
    """

    def __init__(self, amount: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.amount, self.seconds, self._clock = amount, seconds, clock
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # key -> [window end, requests counted]
        self._next_sweep = 0.0

    def hit(self, key: str) -> bool:
        """Count one request of ``key``; False when its window is full (the request is not counted)."""
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
                self._next_sweep = now + self.seconds
            window = self._windows.get(key)
            if window is None or window[0] <= now:
                self._windows[key] = [now + self.seconds, 1.0]
                return True
            if window[1] >= self.amount:
                return False
            window[1] += 1.0
            return True

    def reset_in(self, key: str) -> float:
        """Seconds until ``key``'s window ends (0: no window open)."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
        return max(0.0, window[0] - now) if window is not None else 0.0


class RateLimiter:
    """``hit(key)`` counts one request of ``key`` and says whether it is allowed.

    Parameters
    ----------
    limit:
        ``OPENFLIX_RATE_LIMIT``, e.g. ``"6000/minute"``.
    redis_url:
        Shared storage; empty: per-process memory.
    """

    def __init__(self, limit: str, redis_url: str = "") -> None:
        try:
            self.item: RateLimitItem = parse(limit)
        except ValueError:
            raise ConfigError(
                f"OPENFLIX_RATE_LIMIT={limit!r} is not a rate limit; expected e.g. 6000/minute or 100/second"
            ) from None
        self.description = str(self.item)
        self._memory = MemoryWindows(self.item.amount, self.item.get_expiry())
        self._shared: FixedWindowRateLimiter | None = None
        if redis_url:
            try:
                self._shared = FixedWindowRateLimiter(storage_from_string(redis_url))
            except ConfigurationError as exc:
                raise ConfigError(f"OPENFLIX_REDIS_URL={redis_url!r}: {exc}") from None
        self._falling_back = False

    def hit(self, key: str) -> bool:
        """Count a request of ``key``; False when it is over the limit."""
        if self._shared is not None:
            try:
                allowed = self._shared.hit(self.item, key)
            except Exception as exc:  # redis-py raises its own ConnectionError, TimeoutError, ...
                if not self._falling_back:
                    log.warning("rate limits counted per process: Redis cannot be reached (%s)", exc)
                    self._falling_back = True
            else:
                self._falling_back = False
                return allowed
        return self._memory.hit(key)

    def retry_after(self, key: str) -> int:
        """Seconds until ``key``'s window resets (at least 1)."""
        if self._shared is None or self._falling_back:
            return max(1, int(self._memory.reset_in(key) + 0.999))
        try:
            reset = self._shared.get_window_stats(self.item, key).reset_time
        except Exception:
            return int(self.item.get_expiry())
        return max(1, int(reset - time.time() + 0.999))
