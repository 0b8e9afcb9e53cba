"""One strict reading of HH:MM, HH:MM-HH:MM and YYYY-MM-DD for every setting, option and field."""

from __future__ import annotations

from datetime import date

import pytest

from openflix import timeofday


def test_times_windows_and_days_read_as_written() -> None:
    assert timeofday.minutes("00:00") == 0 and timeofday.minutes("23:59") == 1439
    assert timeofday.minutes("3:05") == 185  # an hour of one digit, as people write it
    assert timeofday.window("02:00-06:00") == (120, 360)
    assert timeofday.window("22:00-02:00") == (1320, 120)  # runs past midnight
    assert timeofday.day("2026-02-28") == date(2026, 2, 28)


@pytest.mark.parametrize(
    "text",
    [
        "24:00", "08:60", "8:5", "8", " 08:00", "08:00 ", "+8:00",
        "\u0660\u0668:\u0660\u0660",  # Arabic-Indic digits: int() and a regular expression's \d take them
    ],
)  # fmt: skip
def test_a_time_of_day_is_two_ascii_fields_on_a_24_hour_clock(text: str) -> None:
    with pytest.raises(ValueError, match="expected a time of day HH:MM from 00:00 to 23:59"):
        timeofday.minutes(text)


def test_a_window_that_ends_when_it_starts_is_refused_it_would_never_come() -> None:
    with pytest.raises(ValueError, match="never comes"):
        timeofday.window("03:00-03:00")
    for text in ("02:00", "02:00-6", "02:00-06:00-07:00", "0\u0662:00-06:00"):
        with pytest.raises(ValueError, match="expected a window HH:MM-HH:MM"):
            timeofday.window(text)


@pytest.mark.parametrize("text", ["20260228", "2026-W09-6", "2026-02-30", "2026-2-28", "\u0662026-02-28", ""])
def test_a_day_is_year_month_day_with_dashes(text: str) -> None:
    # date.fromisoformat takes the basic and week forms too: an option that says YYYY-MM-DD should not
    with pytest.raises(ValueError, match="expected a date YYYY-MM-DD"):
        timeofday.day(text)
