"""Sentences the voice agent reads out, in the company's language.

The ``message`` of every answer is spoken verbatim or nearly so by the model, so it is short, has no
ISO timestamps or UTC (callers think in their local wall time) and says what to do next. A small
table instead of Babel: two languages, a dozen sentences, and no locale data to ship. Unknown
locales fall back to English.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Final
from zoneinfo import ZoneInfo

from voicebook.retell.errors import ArgumentError
from voicebook.retell.phrases import (
    INVALID,
    MONTHS,
    OR,
    SENTENCES,
    UNITS,
    WEEKDAYS,
    WEEKDAYS_HABITUAL,
    Lang,
)

MAX_SPOKEN_SLOTS: Final[int] = 3


def language(locale: str | None) -> Lang:
    """``"de"``, ``"de-AT"``, ``"de_DE"`` → de; anything that is not German → en."""
    return "de" if (locale or "").replace("_", "-").split("-")[0].lower() == "de" else "en"


def _local(dt: datetime, tz: ZoneInfo) -> datetime:
    if dt.tzinfo is None:
        # A naive datetime could be UTC or local; guessing would read out a time an hour or two off.
        raise ValueError("spoken times need an aware datetime")
    return dt.astimezone(tz)


def spoken_day(dt: datetime, tz: ZoneInfo, locale: str | None) -> str:
    local, lang = _local(dt, tz), language(locale)
    weekday, month = WEEKDAYS[lang][local.weekday()], MONTHS[lang][local.month - 1]
    if lang == "de":
        return f"{weekday}, {local.day}. {month}"
    return f"{weekday}, {month} {local.day}"


def spoken_time(dt: datetime, tz: ZoneInfo, locale: str | None) -> str:
    local = _local(dt, tz)
    if language(locale) == "de":
        return f"{local.hour}:{local.minute:02d} Uhr"
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def spoken_datetime(dt: datetime, tz: ZoneInfo, locale: str | None) -> str:
    """Always in the company's wall time, e.g. "Dienstag, 10. Oktober um 8:00 Uhr".

    A time read out in UTC would send the caller to the door an hour or two off.
    """
    joiner = " um " if language(locale) == "de" else " at "
    return spoken_day(dt, tz, locale) + joiner + spoken_time(dt, tz, locale)


def _join(items: Sequence[str], lang: Lang) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {OR[lang]} {items[-1]}"


def spoken_slots(slots: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    """Up to three slots, the day said once per day: "Montag, 5. Oktober um 9:00 Uhr oder 9:30 Uhr"."""
    lang = language(locale)
    groups: list[tuple[str, list[str]]] = []
    for slot in sorted(slots)[:MAX_SPOKEN_SLOTS]:
        day = spoken_day(slot, tz, lang)
        if not groups or groups[-1][0] != day:
            groups.append((day, []))
        groups[-1][1].append(spoken_time(slot, tz, lang))
    joiner = " um " if lang == "de" else " at "
    return _join([day + joiner + _join(times, lang) for day, times in groups], lang)


def _say(key: str, locale: str | None, **values: str) -> str:
    return SENTENCES[key][language(locale)].format(**values)


def booked(service: str, start: datetime, tz: ZoneInfo, locale: str | None) -> str:
    return _say("booked", locale, service=service, when=spoken_datetime(start, tz, locale))


def available(slots: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    chosen = sorted(slots)[:MAX_SPOKEN_SLOTS]
    if not chosen:
        return _say("nothing_free", locale)
    lang = language(locale)
    days = {spoken_day(s, tz, lang) for s in chosen}
    if len(days) > 1:
        return _say("available_days", locale, slots=spoken_slots(chosen, tz, lang))
    times = _join([spoken_time(s, tz, lang) for s in chosen], lang)
    return _say("available", locale, day=days.pop(), times=times)


def _with_offer(key: str, alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    return _offer(_say(key, locale), alternatives, tz, locale)


def slot_unavailable(alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    return _with_offer("slot_unavailable", alternatives, tz, locale)


def _offer(head: str, alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    if not alternatives:
        return f"{head} {_say('no_offer', locale)}"
    return f"{head} {_say('offer', locale, slots=spoken_slots(alternatives, tz, locale))}"


def closed_day(day: date, alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    """The caller asked about a day the business does not open: say so, then the next open slots."""
    head = _say("closed_day", locale, weekdays=WEEKDAYS_HABITUAL[language(locale)][day.weekday()])
    return _offer(head, alternatives, tz, locale)


def day_full(day: date, alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    """An open day with nothing free: about the day, not about "this time"."""
    noon = datetime.combine(day, time(12), tz)
    return _offer(_say("day_full", locale, day=spoken_day(noon, tz, locale)), alternatives, tz, locale)


def rejected_duplicate(alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    """Says only that the slot could not be confirmed: the booking we saw is someone else's."""
    return _with_offer("rejected_duplicate", alternatives, tz, locale)


def in_progress(locale: str | None) -> str:
    return _say("in_progress", locale)


def cancelled(start: datetime, tz: ZoneInfo, locale: str | None) -> str:
    return _say("cancelled", locale, when=spoken_datetime(start, tz, locale))


def rescheduled(new_start: datetime, tz: ZoneInfo, locale: str | None) -> str:
    return _say("rescheduled", locale, when=spoken_datetime(new_start, tz, locale))


def invalid_input(error: ArgumentError, locale: str | None) -> str:
    table = INVALID.get((error.field, error.code)) or INVALID.get((None, error.code)) or INVALID[(None, None)]
    return table[language(locale)]


def service_not_found(offered: Sequence[str], locale: str | None) -> str:
    """Lists what is offered so the model can ask the caller to pick one."""
    if not offered:
        return _say("service_not_found_empty", locale)
    return _say("service_not_found", locale, services=_join(list(offered), language(locale)))


def appointment_not_found(locale: str | None) -> str:
    return _say("appointment_not_found", locale)


def attempt_conflict(locale: str | None) -> str:
    """The same call asked for this slot before with another name or e-mail: booking silently
    with either set would give someone a confirmation for details they did not give."""
    return _say("attempt_conflict", locale)


def unknown_number(locale: str | None) -> str:
    """The dialled number belongs to no company; say so rather than pretend to book."""
    return _say("unknown_number", locale)


def _count(amount: int, unit: str, lang: Lang) -> str:
    singular, plural = UNITS[unit][lang]
    return f"{amount} {singular if amount == 1 else plural}"


def spoken_duration(minutes: int, locale: str | None) -> str:
    """The largest whole unit: 1440 → "1 Tag", 120 → "2 hours", 90 → "90 minutes"."""
    lang = language(locale)
    if minutes and minutes % (24 * 60) == 0:
        return _count(minutes // (24 * 60), "day", lang)
    if minutes and minutes % 60 == 0:
        return _count(minutes // 60, "hour", lang)
    return _count(minutes, "minute", lang)


def too_far_ahead(max_days_ahead: int, locale: str | None) -> str:
    """The start lies beyond the service's booking window (``booking.window``, TOO_FAR); says the limit."""
    return _say("too_far_ahead", locale, days=_count(max_days_ahead, "day", language(locale)))


def too_short_notice(min_notice_minutes: int, locale: str | None) -> str:
    """The start is closer than the service's minimum notice (``booking.window``, TOO_SOON)."""
    if min_notice_minutes <= 0:
        return _say("too_short_notice_plain", locale)
    return _say("too_short_notice", locale, notice=spoken_duration(min_notice_minutes, locale))


def upstream_error(locale: str | None) -> str:
    return _say("upstream_error", locale)


def calendar_busy(locale: str | None) -> str:
    """The credential's request budget is used up for a few seconds: "einen Moment", never a 429."""
    return _say("calendar_busy", locale)


def calendar_disconnected(locale: str | None) -> str:
    """The company's own Cal.com credential was refused or revoked: say so, do not promise a retry."""
    return _say("calendar_disconnected", locale)


def ambiguous(options: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    """Names the caller's own appointments so the caller can pick one ("am Montag um 10:00 oder …")."""
    spoken = [spoken_datetime(o, tz, locale) for o in options]
    return _say("ambiguous", locale, options=_join(spoken, language(locale)))


def reschedule_unchanged(start: datetime, tz: ZoneInfo, locale: str | None) -> str:
    return _say("reschedule_unchanged", locale, when=spoken_datetime(start, tz, locale))


def changed_meanwhile(start: datetime | None, tz: ZoneInfo, locale: str | None) -> str:
    """A concurrent request changed the appointment first: say what it is now."""
    if start is None:
        return _say("changed_meanwhile_cancelled", locale)
    return _say("changed_meanwhile_moved", locale, when=spoken_datetime(start, tz, locale))


def cancelled_meanwhile(locale: str | None) -> str:
    return _say("cancelled_meanwhile", locale)


def change_refused(locale: str | None) -> str:
    return _say("change_refused", locale)


def too_many_rebooks(locale: str | None) -> str:
    return _say("too_many_rebooks", locale)
