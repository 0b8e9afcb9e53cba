"""Rate limits per token, on the ``limits`` library: a fixed window per key, in Redis or in memory.

The same counting as Flask-Limiter (which is built on ``limits``), called
directly from one ``before_request`` hook: Flask-Limiter's per-request
bookkeeping (blueprint scopes, decorated limits, response headers) cost
about 0.12 ms of a 0.35 ms cached home request, and openflix has one limit
for every limited route.

With Redis configured the windows are shared by every process; while Redis
cannot be reached, each process counts in memory (one log line when that
starts) and goes back to Redis when it answers again.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from openflix.errors import ConfigError

__all__ = ["RateLimiter"]

log = logging.getLogger("openflix.api")


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
        self._memory = FixedWindowRateLimiter(MemoryStorage())
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
        return self._memory.hit(self.item, key)

    def retry_after(self, key: str) -> int:
        """Seconds until ``key``'s window resets (at least 1)."""
        limiter = self._memory if self._shared is None or self._falling_back else self._shared
        try:
            reset = limiter.get_window_stats(self.item, key).reset_time
        except Exception:
            return int(self.item.get_expiry())
        return max(1, int(reset - time.time() + 0.999))
