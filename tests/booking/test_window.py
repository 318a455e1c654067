"""The booking window (issue 13, case 8): table-driven, boundaries included, and no date that overflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebook.booking.window import (
    DEFAULT_MAX_DAYS_AHEAD,
    DEFAULT_MIN_NOTICE_MINUTES,
    MAX_DAYS_AHEAD_LIMIT,
    BookingWindow,
    WindowVerdict,
    check_window,
    earliest_start,
    window_end,
)

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2 March 2026, 10:00 in Berlin (CET).
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INSIDE, TOO_SOON, TOO_FAR = WindowVerdict.INSIDE, WindowVerdict.TOO_SOON, WindowVerdict.TOO_FAR


def test_defaults() -> None:
    assert (DEFAULT_MAX_DAYS_AHEAD, DEFAULT_MIN_NOTICE_MINUTES) == (365, 0)
    assert BookingWindow() == BookingWindow(max_days_ahead=365, min_notice_minutes=0)


@pytest.mark.parametrize(
    ("window", "start", "expected"),
    [
        # minimum notice, in minutes from now
        (BookingWindow(min_notice_minutes=60), NOW + timedelta(minutes=59), TOO_SOON),
        (BookingWindow(min_notice_minutes=60), NOW + timedelta(minutes=60), INSIDE),
        (BookingWindow(min_notice_minutes=0), NOW, INSIDE),
        (BookingWindow(min_notice_minutes=0), NOW - timedelta(minutes=1), TOO_SOON),
        (BookingWindow(), datetime(1, 1, 1, tzinfo=UTC), TOO_SOON),
        # max days ahead, in calendar days of the company's zone
        (BookingWindow(max_days_ahead=1), datetime(2026, 3, 3, 22, 59, tzinfo=UTC), INSIDE),  # Tue 23:59
        (BookingWindow(max_days_ahead=1), datetime(2026, 3, 3, 23, 0, tzinfo=UTC), TOO_FAR),  # Wed 00:00
        (BookingWindow(), datetime(2027, 3, 2, 22, 30, tzinfo=UTC), INSIDE),  # day 365, 23:30 Berlin
        (BookingWindow(), datetime(2027, 3, 2, 23, 0, tzinfo=UTC), TOO_FAR),  # day 366
        (BookingWindow(), datetime(9999, 12, 30, 10, 0, tzinfo=UTC), TOO_FAR),
        (BookingWindow(), datetime(9999, 12, 31, 23, 30, tzinfo=UTC), TOO_FAR),
        (BookingWindow(), datetime.max.replace(tzinfo=UTC), TOO_FAR),
        (BookingWindow(max_days_ahead=MAX_DAYS_AHEAD_LIMIT), datetime.max.replace(tzinfo=UTC), TOO_FAR),
        # both limits on one window
        (BookingWindow(max_days_ahead=2, min_notice_minutes=24 * 60), NOW + timedelta(hours=23), TOO_SOON),
        (BookingWindow(max_days_ahead=2, min_notice_minutes=24 * 60), NOW + timedelta(hours=24), INSIDE),
    ],
)
def test_verdicts(window: BookingWindow, start: datetime, expected: WindowVerdict) -> None:
    assert check_window(window, start, NOW, BERLIN) is expected


def test_days_are_counted_in_the_companys_zone() -> None:
    """23:30 UTC on Tuesday is already Wednesday in Berlin: two days ahead there, one in UTC."""
    start = datetime(2026, 3, 3, 23, 30, tzinfo=UTC)
    assert check_window(BookingWindow(max_days_ahead=1), start, NOW, UTC) is INSIDE
    assert check_window(BookingWindow(max_days_ahead=1), start, NOW, BERLIN) is TOO_FAR


def test_now_at_the_end_of_time_does_not_overflow() -> None:
    end = datetime.max.replace(tzinfo=UTC) - timedelta(minutes=1)
    assert check_window(BookingWindow(), end, end, ZoneInfo("Pacific/Kiritimati")) is INSIDE


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_window(BookingWindow(), datetime(2026, 3, 3, 10), NOW)


@pytest.mark.parametrize(
    ("max_days", "min_notice"),
    [(0, 0), (-1, 0), (MAX_DAYS_AHEAD_LIMIT + 1, 0), (365, -1), (1, 24 * 60 + 1)],
)
def test_impossible_windows_are_refused(max_days: int, min_notice: int) -> None:
    with pytest.raises(ValueError, match="booking window"):
        BookingWindow(max_days_ahead=max_days, min_notice_minutes=min_notice)


def test_window_end_is_midnight_after_the_last_bookable_day() -> None:
    one_day = BookingWindow(max_days_ahead=1)
    assert window_end(one_day, NOW, BERLIN) == datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
    assert window_end(one_day, NOW, UTC) == datetime(2026, 3, 4, 0, 0, tzinfo=UTC)
    assert check_window(one_day, window_end(one_day, NOW, BERLIN), NOW, BERLIN) is TOO_FAR
    assert (
        check_window(one_day, window_end(one_day, NOW, BERLIN) - timedelta(minutes=1), NOW, BERLIN) is INSIDE
    )


def test_earliest_start_and_clamping_at_the_end_of_time() -> None:
    assert earliest_start(BookingWindow(min_notice_minutes=90), NOW) == NOW + timedelta(minutes=90)
    end = datetime.max.replace(tzinfo=UTC) - timedelta(minutes=1)
    assert earliest_start(BookingWindow(min_notice_minutes=90), end) == datetime.max.replace(tzinfo=UTC)
    assert window_end(BookingWindow(), end, BERLIN) == datetime.max.replace(tzinfo=UTC)
