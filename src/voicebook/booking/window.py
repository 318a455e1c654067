"""The booking window of a service: how far ahead a caller may book, and how much notice is needed.

Issue 13, case 8: without a horizon, ``9999-12-30T10:00`` was booked and ``9999-12-31T23:30`` overflowed
in the flow and the reconciler. This module is the rule, pure and clock-free: the caller passes ``now``.

* ``max_days_ahead`` counts **calendar days in the company's zone**: with 1, a caller may book any time
  tomorrow, whatever the hour now — that is what "bookable one day ahead" means to a business.
* ``min_notice_minutes`` counts minutes from ``now``; 0 (the default) only refuses the past and leaves
  the short-notice policy to Cal.com's own per-event-type minimum notice.

No arithmetic here adds to a date the caller sent: the checks subtract two instants (a ``timedelta``
cannot overflow for any pair of datetimes) and convert to the company's zone only dates already known
to lie within ``max_days_ahead + 1`` days of ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final

DEFAULT_MAX_DAYS_AHEAD: Final[int] = 365
DEFAULT_MIN_NOTICE_MINUTES: Final[int] = 0
# Ten years: far beyond any business's horizon, and far from the end of representable time. The Retell
# argument parser refuses dates beyond its own, larger horizon before they reach this module.
MAX_DAYS_AHEAD_LIMIT: Final[int] = 3650
_MINUTES_PER_DAY: Final[int] = 24 * 60


class WindowVerdict(StrEnum):
    INSIDE = "inside"
    TOO_SOON = "too_soon"  # less notice than min_notice_minutes (or in the past)
    TOO_FAR = "too_far"  # more calendar days ahead than max_days_ahead


@dataclass(frozen=True, slots=True)
class BookingWindow:
    """A service's window; an impossible one (nothing bookable) is refused when it is built."""

    max_days_ahead: int = DEFAULT_MAX_DAYS_AHEAD
    min_notice_minutes: int = DEFAULT_MIN_NOTICE_MINUTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_days_ahead <= MAX_DAYS_AHEAD_LIMIT:
            raise ValueError(f"booking window: max_days_ahead must be 1..{MAX_DAYS_AHEAD_LIMIT}")
        if not 0 <= self.min_notice_minutes < self.max_days_ahead * _MINUTES_PER_DAY:
            raise ValueError(
                "booking window: min_notice_minutes must be >= 0 and shorter than max_days_ahead"
            )


def _aware(*values: datetime) -> None:
    if any(v.tzinfo is None or v.utcoffset() is None for v in values):
        raise ValueError("booking window: start and now must be aware datetimes")


def check_window(window: BookingWindow, start: datetime, now: datetime, tz: tzinfo = UTC) -> WindowVerdict:
    """Whether ``start`` may be booked at ``now`` for a company in ``tz``; never overflows."""
    _aware(start, now)
    lead = start - now  # exact for any two aware datetimes
    if lead < timedelta(minutes=window.min_notice_minutes):
        return WindowVerdict.TOO_SOON
    if lead > timedelta(days=window.max_days_ahead + 1):
        return WindowVerdict.TOO_FAR  # decided without touching the far date
    try:
        days = (start.astimezone(tz).date() - now.astimezone(tz).date()).days
    except OverflowError:  # ``now`` itself at the end of representable time: count 24-hour days
        days = lead.days
    return WindowVerdict.TOO_FAR if days > window.max_days_ahead else WindowVerdict.INSIDE


def earliest_start(window: BookingWindow, now: datetime) -> datetime:
    """The first bookable instant (``now`` plus the minimum notice), e.g. to start a slot search."""
    _aware(now)
    try:
        return now + timedelta(minutes=window.min_notice_minutes)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def window_end(window: BookingWindow, now: datetime, tz: tzinfo = UTC) -> datetime:
    """The first instant past the window (exclusive, UTC): midnight after the last bookable day in ``tz``.

    Use it to clamp slot searches and alternatives; at the end of representable time it is clamped to
    ``datetime.max`` rather than overflowing.
    """
    _aware(now)
    try:
        last_day = now.astimezone(tz).date() + timedelta(days=window.max_days_ahead + 1)
        return datetime.combine(last_day, time(0), tzinfo=tz).astimezone(UTC)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)
