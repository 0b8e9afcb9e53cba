"""Times of day (``HH:MM``), fill windows (``HH:MM-HH:MM``) and calendar days (``YYYY-MM-DD``) read strictly.

One reading for every place that takes them — a setting, a CLI option, a
topology file, an API body, a job's parameters — so that each accepts the
same text: ASCII digits only (``int()`` and the ``\\d`` of a regular
expression also take other scripts' digits), one or two for the hour and
two for the minutes, a 24-hour clock.  Each function raises :class:`ValueError` with what was
expected; callers name the setting, option or field.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["DAY_PATTERN", "TIME_PATTERN", "WINDOW_PATTERN", "day", "minutes", "window"]

TIME_PATTERN = r"([01]?[0-9]|2[0-3]):([0-5][0-9])"
"""``HH:MM`` from 00:00 to 23:59, or ``H:MM`` (two groups: hours, minutes)."""
WINDOW_PATTERN = f"{TIME_PATTERN}-{TIME_PATTERN}"
"""``HH:MM-HH:MM``: a window's start and end."""
DAY_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
"""``YYYY-MM-DD`` (the month and day are then checked by the calendar)."""

_TIME = re.compile(TIME_PATTERN)
_WINDOW = re.compile(WINDOW_PATTERN)
_DAY = re.compile(DAY_PATTERN)


def minutes(text: str) -> int:
    """``"HH:MM"`` -> minutes after midnight, ``0..1439``."""
    if not isinstance(text, str) or (m := _TIME.fullmatch(text)) is None:
        raise ValueError(f"expected a time of day HH:MM from 00:00 to 23:59, got {text!r}")
    return int(m[1]) * 60 + int(m[2])


def window(text: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` -> (start, end) in minutes after midnight; an end before the start runs past
    midnight (``22:00-02:00``).  A window that ends when it starts never comes: refused."""
    if not isinstance(text, str) or (m := _WINDOW.fullmatch(text)) is None:
        raise ValueError(f"expected a window HH:MM-HH:MM (local time, e.g. 02:00-06:00), got {text!r}")
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    if start == end:
        raise ValueError(f"a window that ends when it starts never comes (got {text!r}); e.g. 02:00-06:00")
    return start, end


def day(text: str) -> date:
    """``"YYYY-MM-DD"`` -> the date (not the ISO week or basic forms ``date.fromisoformat`` also takes)."""
    if isinstance(text, str) and _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {text!r}")
