"""Free slots and alternatives, in UTC; the company's zone only decides what "a day" is."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from voicebook.booking import outcomes
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.types import AnswerStatus

ALTERNATIVES = 3
LOOKAHEAD_DAYS = 7


def local_day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz)


async def alternatives(
    gateway: CalendarGateway, event_type_id: int, around: datetime, now: datetime, count: int = ALTERNATIVES
) -> tuple[datetime, ...]:
    """The free starts nearest to the wished time, later ones first when equally near."""
    window_start = max(now, around - timedelta(days=1))
    slots = await gateway.find_slots(event_type_id, window_start, around + timedelta(days=LOOKAHEAD_DAYS))
    candidates = [s for s in slots if s != around and s > now]
    candidates.sort(key=lambda s: (abs((s - around).total_seconds()), s < around))
    return tuple(sorted(candidates[:count]))


async def check(
    gateway: CalendarGateway, event_type_id: int, day: date, at: time | None, tz: ZoneInfo, now: datetime
) -> outcomes.Outcome:
    if at is not None:
        wished = datetime.combine(day, at, tz)
        start, end = local_day_window(day, tz)
        slots = await gateway.find_slots(event_type_id, max(start, now), end)
        if any(s == wished for s in slots):
            return outcomes.Outcome(AnswerStatus.AVAILABLE, slots=(wished,))
        alts = await alternatives(gateway, event_type_id, wished.astimezone(ZoneInfo("UTC")), now)
        return outcomes.Outcome(AnswerStatus.SLOT_UNAVAILABLE, alternatives=alts, reason="taken")
    start, end = local_day_window(day, tz)
    slots = await gateway.find_slots(event_type_id, max(start, now), end)
    if slots:
        return outcomes.Outcome(AnswerStatus.AVAILABLE, slots=tuple(slots))
    alts = await alternatives(gateway, event_type_id, max(start, now), now)
    return outcomes.Outcome(AnswerStatus.SLOT_UNAVAILABLE, alternatives=alts, reason="day_full")
