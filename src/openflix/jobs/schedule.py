"""The nightly retrain: every serving and worker process keeps a clock thread; one job runs per night.

At ``OPENFLIX_RETRAIN_AT`` (UTC) each process submits a ``retrain`` job
whose id is ``nightly-<date>``; the id is the job record's primary key, so
only the first submission starts anything and the others see it exists.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from openflix import timeofday
from openflix.errors import ConfigError

if TYPE_CHECKING:
    from openflix.services.platform import Platform

__all__ = ["next_run", "parse_time", "retrain_time", "start_clock"]

log = logging.getLogger("openflix.jobs")


def parse_time(text: str) -> tuple[int, int]:
    """``"HH:MM"`` -> (hour, minute); :class:`ConfigError` naming ``OPENFLIX_RETRAIN_AT`` otherwise."""
    try:
        return divmod(timeofday.minutes(text), 60)
    except ValueError:
        raise ConfigError(
            f"OPENFLIX_RETRAIN_AT={text!r} is not a time; expected HH:MM (UTC), e.g. 03:00"
        ) from None


def next_run(now: datetime, at: str) -> datetime:
    """The first moment at ``at`` (HH:MM UTC) strictly after ``now`` (aware, UTC)."""
    hour, minute = parse_time(at)
    today = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def retrain_time(setting: str) -> str | None:
    """``OPENFLIX_RETRAIN_AT`` checked: the ``HH:MM`` it names, ``None`` when ``off`` or empty;
    :class:`ConfigError` when malformed."""
    at = setting.strip()
    if not at or at.lower() == "off":
        return None
    parse_time(at)
    return at


def start_clock(platform: Platform) -> threading.Thread | None:
    """Start the clock thread of this process (``None`` when ``OPENFLIX_RETRAIN_AT`` is ``off``)."""
    at = retrain_time(platform.settings.retrain_at)
    if at is None:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            when = next_run(datetime.now(UTC), at)
            if stop.wait((when - datetime.now(UTC)).total_seconds()):
                return
            try:
                platform.jobs.submit("retrain", {}, job_id=f"nightly-{when:%Y-%m-%d}")
            except Exception:
                log.exception("could not submit the nightly retrain")

    thread = threading.Thread(target=loop, name="openflix-nightly-retrain", daemon=True)
    thread.start()
    return thread
