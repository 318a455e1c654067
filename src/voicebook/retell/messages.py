"""Sentences the voice agent reads out, in the company's language.

The ``message`` of every answer is spoken verbatim or nearly so by the model, so it is short, has no
ISO timestamps or UTC (callers think in their local wall time) and says what to do next. A small
table instead of Babel: two languages, a dozen sentences, and no locale data to ship. Unknown
locales fall back to English.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from voicebook.retell.errors import ArgumentError

Lang = Literal["de", "en"]
MAX_SPOKEN_SLOTS: Final[int] = 3

_WEEKDAYS: Final[dict[Lang, tuple[str, ...]]] = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS: Final[dict[Lang, tuple[str, ...]]] = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip
_OR: Final[dict[Lang, str]] = {"de": "oder", "en": "or"}

_S: Final[dict[str, dict[Lang, str]]] = {
    "booked": {
        "de": "Ihr Termin für {service} ist gebucht: {when}.",
        "en": "Your {service} appointment is booked for {when}.",
    },
    "available": {
        "de": "Am {day} ist um {times} noch etwas frei.",
        "en": "On {day} I have {times}.",
    },
    "available_days": {"de": "Frei wäre {slots}.", "en": "I have {slots}."},
    "nothing_free": {
        "de": "An diesem Tag ist leider nichts mehr frei.",
        "en": "Sorry, there is nothing free on that day.",
    },
    "slot_unavailable": {
        "de": "Dieser Termin ist leider nicht frei.",
        "en": "Sorry, that time is not available.",
    },
    "rejected_duplicate": {
        "de": "Diesen Termin konnte ich leider nicht bestätigen.",
        "en": "Sorry, I could not confirm that slot.",
    },
    "offer": {"de": "Ich kann Ihnen {slots} anbieten.", "en": "I can offer {slots}."},
    "no_offer": {
        "de": "Soll ich an einem anderen Tag suchen?",
        "en": "Shall I look at another day?",
    },
    "in_progress": {
        "de": "Ich konnte den Termin noch nicht bestätigen; wir rufen Sie zurück oder schicken "
        "Ihnen eine SMS, sobald er feststeht.",
        "en": "I could not confirm it yet; we will call or text you back as soon as it is settled.",
    },
    "cancelled": {
        "de": "Ihr Termin am {when} ist storniert.",
        "en": "Your appointment on {when} is cancelled.",
    },
    "rescheduled": {
        "de": "Ihr Termin ist verschoben auf {when}.",
        "en": "Your appointment is moved to {when}.",
    },
    "service_not_found": {
        "de": "Diese Leistung bieten wir nicht an; möglich sind {services}.",
        "en": "We do not offer that; we offer {services}.",
    },
    "service_not_found_empty": {
        "de": "Diese Leistung bieten wir leider nicht an.",
        "en": "Sorry, we do not offer that.",
    },
    "appointment_not_found": {
        "de": "Unter dieser Telefonnummer habe ich keinen Termin gefunden.",
        "en": "I could not find an appointment for that phone number.",
    },
    "upstream_error": {
        "de": "Der Kalender ist gerade nicht erreichbar; bitte versuchen Sie es gleich noch einmal.",
        "en": "The calendar is not reachable right now; please try again in a moment.",
    },
}

# invalid_input: (field, code) first, then (None, code), then the generic fallback.
_INVALID: Final[dict[tuple[str | None, str], dict[Lang, str]]] = {
    ("date", "past"): {
        "de": "Das Datum liegt in der Vergangenheit.",
        "en": "That date is in the past.",
    },
    ("time", "past"): {
        "de": "Diese Uhrzeit ist heute schon vorbei.",
        "en": "That time has already passed today.",
    },
    (None, "past"): {
        "de": "Das Datum liegt in der Vergangenheit.",
        "en": "That time is in the past.",
    },
    ("service", "missing"): {
        "de": "Mir fehlt noch, welche Leistung Sie möchten.",
        "en": "I still need to know which service you would like.",
    },
    ("name", "missing"): {"de": "Mir fehlt noch Ihr Name.", "en": "I still need your name."},
    ("start", "missing"): {
        "de": "Mir fehlt noch der gewünschte Tag und die Uhrzeit.",
        "en": "I still need the day and time you would like.",
    },
    ("new_start", "missing"): {
        "de": "Mir fehlt noch der neue Tag und die Uhrzeit.",
        "en": "I still need the new day and time.",
    },
    ("phone", "missing"): {
        "de": "Mir fehlt noch Ihre Telefonnummer.",
        "en": "I still need your phone number.",
    },
    (None, "missing"): {
        "de": "Mir fehlt noch eine Angabe.",
        "en": "I am still missing some information.",
    },
    (None, "bad_date"): {
        "de": "Das Datum habe ich nicht verstanden.",
        "en": "I did not understand that date.",
    },
    (None, "bad_time"): {
        "de": "Die Uhrzeit habe ich nicht verstanden.",
        "en": "I did not understand that time.",
    },
    (None, "nonexistent_time"): {
        "de": "Diese Uhrzeit gibt es an dem Tag wegen der Zeitumstellung nicht.",
        "en": "That time does not exist on that day because the clocks change.",
    },
    (None, "bad_phone"): {
        "de": "Die Telefonnummer scheint nicht zu stimmen.",
        "en": "That phone number does not seem to be valid.",
    },
    (None, "bad_email"): {
        "de": "Die E-Mail-Adresse scheint nicht zu stimmen.",
        "en": "That e-mail address does not seem to be valid.",
    },
    ("name", "too_long"): {"de": "Der Name ist zu lang.", "en": "That name is too long."},
    ("notes", "too_long"): {
        "de": "Die Notiz ist zu lang; bitte fassen Sie sie kürzer.",
        "en": "The note is too long; please keep it shorter.",
    },
    (None, "too_long"): {"de": "Die Angabe ist zu lang.", "en": "That is too long."},
    (None, "unchanged"): {
        "de": "Der neue Termin ist derselbe wie der alte.",
        "en": "The new time is the same as the current one.",
    },
    (None, "unknown_function"): {
        "de": "Das kann ich leider nicht erledigen.",
        "en": "Sorry, I cannot do that.",
    },
    (None, None): {
        "de": "Eine Angabe habe ich nicht verstanden.",
        "en": "I did not understand one of the details.",
    },
}


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
    weekday, month = _WEEKDAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "de":
        return f"{weekday}, {local.day}. {month}"
    return f"{weekday}, {month} {local.day}"


def spoken_time(dt: datetime, tz: ZoneInfo, locale: str | None) -> str:
    local = _local(dt, tz)
    if language(locale) == "de":
        return f"{local.hour}:{local.minute:02d} Uhr"
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def spoken_datetime(dt: datetime, tz: ZoneInfo, locale: str | None) -> str:
    """"Dienstag, 10. Oktober um 8:00 Uhr" / "Tuesday, October 10 at 8:00 AM", in the company zone."""
    joiner = " um " if language(locale) == "de" else " at "
    return spoken_day(dt, tz, locale) + joiner + spoken_time(dt, tz, locale)


def _join(items: Sequence[str], lang: Lang) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {_OR[lang]} {items[-1]}"


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
    return _S[key][language(locale)].format(**values)


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
    head = _say(key, locale)
    if not alternatives:
        return f"{head} {_say('no_offer', locale)}"
    return f"{head} {_say('offer', locale, slots=spoken_slots(alternatives, tz, locale))}"


def slot_unavailable(alternatives: Sequence[datetime], tz: ZoneInfo, locale: str | None) -> str:
    return _with_offer("slot_unavailable", alternatives, tz, locale)


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
    table = (
        _INVALID.get((error.field, error.code))
        or _INVALID.get((None, error.code))
        or _INVALID[(None, None)]
    )
    return table[language(locale)]


def service_not_found(offered: Sequence[str], locale: str | None) -> str:
    """Lists what is offered so the model can ask the caller to pick one."""
    if not offered:
        return _say("service_not_found_empty", locale)
    return _say("service_not_found", locale, services=_join(list(offered), language(locale)))


def appointment_not_found(locale: str | None) -> str:
    return _say("appointment_not_found", locale)


def upstream_error(locale: str | None) -> str:
    return _say("upstream_error", locale)
