"""check_availability about a day: closed or full is said as such, and the following days are offered."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from tests.fakes import FakeCalendar

from voicebook.booking import availability
from voicebook.booking.types import AnswerStatus
from voicebook.retell import messages

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday morning
SUNDAY = date(2026, 12, 6)


def opening_hours(first: date, days: int, *, closed: frozenset[int] = frozenset({6})) -> list[datetime]:
    """Half-hour slots 09:00-12:00 Berlin time on every day but the closed weekdays (Sunday)."""
    slots = []
    for n in range(days):
        day = first + timedelta(days=n)
        if day.weekday() in closed:
            continue
        for minutes in range(0, 180, 30):
            slots.append(datetime.combine(day, time(9), BERLIN) + timedelta(minutes=minutes))
    return slots


pytestmark = pytest.mark.asyncio


async def test_a_closed_day_says_so_and_offers_the_following_days() -> None:
    calendar = FakeCalendar(slots=opening_hours(date(2026, 11, 30), 21), now=NOW)
    outcome = await availability.check(calendar, 1, SUNDAY, None, BERLIN, NOW)
    assert outcome.status == AnswerStatus.SLOT_UNAVAILABLE
    assert outcome.reason == "closed"
    assert outcome.alternatives, outcome
    assert all(a.astimezone(BERLIN).date() > SUNDAY for a in outcome.alternatives)
    assert outcome.alternatives[0] == datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)
    said = messages.closed_day(SUNDAY, outcome.alternatives, BERLIN, "de")
    assert said.startswith("Sonntags haben wir geschlossen. Ich kann Ihnen Montag, 7. Dezember um 9:00 Uhr")
    assert messages.closed_day(SUNDAY, outcome.alternatives, BERLIN, "en").startswith(
        "We are closed on Sundays. I can offer Monday, December 7 at 9:00 AM"
    )


async def test_a_closed_day_asked_with_a_time_is_still_a_closed_day() -> None:
    calendar = FakeCalendar(slots=opening_hours(date(2026, 11, 30), 21), now=NOW)
    outcome = await availability.check(calendar, 1, SUNDAY, time(10), BERLIN, NOW)
    assert outcome.reason == "closed"
    assert min(outcome.alternatives).astimezone(BERLIN).date() == date(2026, 12, 7)


async def test_a_full_day_is_not_called_closed() -> None:
    saturday = date(2026, 12, 5)
    slots = [s for s in opening_hours(date(2026, 11, 30), 21) if s.astimezone(BERLIN).date() != saturday]
    outcome = await availability.check(FakeCalendar(slots=slots, now=NOW), 1, saturday, None, BERLIN, NOW)
    assert outcome.reason == "day_full"
    assert min(outcome.alternatives).astimezone(BERLIN).date() == date(2026, 12, 7)
    assert messages.day_full(saturday, outcome.alternatives, BERLIN, "de").startswith(
        "Am Samstag, 5. Dezember ist leider nichts mehr frei."
    )


async def test_earlier_days_only_when_nothing_later_is_free() -> None:
    slots = opening_hours(date(2026, 11, 30), 6)  # Monday to Saturday, then nothing
    outcome = await availability.check(FakeCalendar(slots=slots, now=NOW), 1, SUNDAY, None, BERLIN, NOW)
    assert outcome.alternatives
    assert all(a.astimezone(BERLIN).date() < SUNDAY for a in outcome.alternatives)


async def test_a_taken_time_on_an_open_day_offers_nothing_from_the_day_before() -> None:
    tuesday = date(2026, 12, 1)
    slots = [
        s
        for s in opening_hours(date(2026, 11, 30), 21)
        if s.astimezone(BERLIN).date() != tuesday or s.astimezone(BERLIN).time() == time(11, 30)
    ]
    outcome = await availability.check(FakeCalendar(slots=slots, now=NOW), 1, tuesday, time(9), BERLIN, NOW)
    assert outcome.reason == "taken"
    assert all(a.astimezone(BERLIN).date() >= tuesday for a in outcome.alternatives)
