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
    gateway: CalendarGateway,
    event_type_id: int,
    around: datetime,
    now: datetime,
    count: int = ALTERNATIVES,
    *,
    not_before: datetime | None = None,
) -> tuple[datetime, ...]:
    """The free starts nearest to the wished time, later ones first when equally near.

    With ``not_before``, nothing earlier is offered unless nothing from there on is free.
    """
    window_start = max(now, around - timedelta(days=1))
    slots = await gateway.find_slots(event_type_id, window_start, around + timedelta(days=LOOKAHEAD_DAYS))
    candidates = [s for s in slots if s != around and s > now]
    if not_before is not None and any(s >= not_before for s in candidates):
        candidates = [s for s in candidates if s >= not_before]
    candidates.sort(key=lambda s: (abs((s - around).total_seconds()), s < around))
    return tuple(sorted(candidates[:count]))


async def check(
    gateway: CalendarGateway, event_type_id: int, day: date, at: time | None, tz: ZoneInfo, now: datetime
) -> outcomes.Outcome:
    """Free slots on the asked-for day (at the asked-for time), else what to offer instead.

    An empty day is either closed (the same weekday a week later is empty too: opening hours, not
    bookings) or full; the caller asked about a day, so the answer says which. What is offered comes
    from the following days first: a caller asking about Sunday wants Monday, not the Saturday before;
    earlier slots are offered only when nothing later is free.
    """
    start, end = local_day_window(day, tz)
    slots = await gateway.find_slots(event_type_id, max(start, now), end)
    if at is not None:
        wished = datetime.combine(day, at, tz)
        if any(s == wished for s in slots):
            return outcomes.Outcome(AnswerStatus.AVAILABLE, slots=(wished,))
        if slots:  # the day is open: the nearest free times, none before the asked-for day
            alts = await alternatives(
                gateway, event_type_id, wished.astimezone(ZoneInfo("UTC")), now, not_before=max(start, now)
            )
            return outcomes.Outcome(AnswerStatus.SLOT_UNAVAILABLE, alternatives=alts, reason="taken")
    elif slots:
        return outcomes.Outcome(AnswerStatus.AVAILABLE, slots=tuple(slots))
    return await _empty_day(gateway, event_type_id, day, tz, now)


async def _empty_day(
    gateway: CalendarGateway, event_type_id: int, day: date, tz: ZoneInfo, now: datetime
) -> outcomes.Outcome:
    """Nothing free on ``day``: closed or full, and the first free slots of the following days."""
    start, end = local_day_window(day, tz)
    week_later_start, week_later_end = local_day_window(day + timedelta(days=7), tz)
    later = await gateway.find_slots(event_type_id, max(end, now), week_later_end)
    closed = not any(week_later_start <= s < week_later_end for s in later)
    offered = tuple(sorted(later)[:ALTERNATIVES])
    if not offered and start > now:  # nothing in the week after: the free slots nearest before the day
        earlier = await gateway.find_slots(
            event_type_id, max(now, start - timedelta(days=LOOKAHEAD_DAYS)), start
        )
        offered = tuple(sorted(earlier)[-ALTERNATIVES:])
    reason = "closed" if closed else "day_full"
    return outcomes.Outcome(AnswerStatus.SLOT_UNAVAILABLE, alternatives=offered, reason=reason, day=day)
