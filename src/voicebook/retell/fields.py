"""Readers for single argument values, written for what LLMs really send rather than the schema.

The tool schemas ask for ``YYYY-MM-DD``, ``HH:MM`` and ``YYYY-MM-DDTHH:MM``, but models add seconds,
offsets, a space instead of ``T``, "9 Uhr", numbers as JSON numbers, or the string "null" for an
optional value they do not know. Each reader accepts the sane variants and turns everything else into
an ``ArgumentError`` with a code the agent can explain; none of them lets another exception escape,
because a 500 in the middle of a phone call leaves the caller with silence.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from voicebook.booking.tenancy import e164_or_none
from voicebook.retell.errors import ArgumentCode, ArgumentError

NAME_MAX = 100
NOTES_MAX = 500
# No date the agent sends may lie further than this from now (either way). Ten years and a week: above
# every service's booking window (booking/window.py allows at most 3650 days), and far enough from the
# end of the calendar that no duration, lookup window or zone offset added later can overflow
# (issue 13, case 8: "9999-12-31T23:30" overflowed in the flow and in every reconciler pass).
HORIZON_DAYS = 3660
SERVICE_MAX = 100

# Strings models put into optional fields when they have nothing to say.
_PLACEHOLDERS = frozenset(
    {"", "null", "none", "nil", "n/a", "-", "unknown", "unbekannt", "keine", "kein", "nicht"}
    | {"not provided", "nicht angegeben", "undefined", "no", "nein"}
)

_DATE_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?", re.ASCII | re.DOTALL)
_DATE_DE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", re.ASCII)
_TIME = re.compile(
    r"(?P<h>\d{1,2})(?:[:.h](?P<m>\d{2})(?::(?P<s>\d{2}))?)?\s*"
    r"(?P<suffix>uhr|h|am|pm|a\.m\.|p\.m\.)?",
    re.ASCII | re.IGNORECASE,
)
_START = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?:T|\s+)(?P<h>\d{1,2}):(?P<m>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,]\d{1,9})?)?\s*"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII | re.IGNORECASE,
)
_TODAY = frozenset({"today", "heute"})
_TOMORROW = frozenset({"tomorrow", "morgen"})


def is_absent(value: object) -> bool:
    """JSON null, an empty string and placeholder words all mean "not given"."""
    if value is None:
        return True
    return isinstance(value, str) and value.strip().casefold() in _PLACEHOLDERS


def text(value: object, field: str, *, max_len: int) -> str:
    """A trimmed single-line string, safe to store and to compare.

    Whitespace runs collapse so "Anna  Müller" and "Anna Müller" are one customer; control
    characters go because PostgreSQL refuses NUL in text and a 500 mid-call is worse than a
    dropped invisible character.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ArgumentError(field, "invalid")
    raw = str(value)
    # A printable string has no control character (``isprintable`` is False for every ``Cc``): nothing
    # to drop, and no per-character look-up for the usual value.
    visible = (
        raw
        if raw.isprintable()
        else "".join(ch for ch in raw if ch.isspace() or unicodedata.category(ch) != "Cc")
    )
    cleaned = " ".join(visible.split())
    if not cleaned:
        raise ArgumentError(field, "missing")
    if len(cleaned) > max_len:
        raise ArgumentError(field, "too_long")
    return cleaned


def person_name(value: object, field: str = "name") -> str:
    """Umlauts and accents are kept (they are the caller's name); a value without any letter is a
    model artefact like "123" or "-", not a name."""
    if is_absent(value):
        raise ArgumentError(field, "missing")
    name = text(value, field, max_len=NAME_MAX)
    if not any(ch.isalpha() for ch in name):
        raise ArgumentError(field, "invalid")
    return name


def calendar_date(value: object, field: str, *, today: date) -> date:
    """Read a day; besides ``YYYY-MM-DD`` German agents echo ``DD.MM.YYYY`` or "morgen".

    A trailing time part ("2026-12-01T15:00…") is dropped: the argument only selects the day.
    """
    if not isinstance(value, str):
        raise ArgumentError(field, "bad_date")
    raw = value.strip()
    word = raw.casefold()
    if word in _TODAY:
        return today
    if word in _TOMORROW:
        return today + timedelta(days=1)
    if m := _DATE_ISO.fullmatch(raw):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := _DATE_DE.fullmatch(raw):
        d, mo, y = int(m[1]), int(m[2]), int(m[3])
    else:
        raise ArgumentError(field, "bad_date")
    try:
        return date(y, mo, d)
    except ValueError:
        raise ArgumentError(field, "bad_date") from None


def time_of_day(value: object, field: str) -> time:
    """Read a time of day however the model wrote it.

    The schema asks for HH:MM, but models send 9, "9", "9 Uhr", "9.30", "14h" or "3 PM" too; each
    is unambiguous, so refusing it would only make the agent ask the caller again.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not (m := _TIME.fullmatch(value.strip())):
        raise ArgumentError(field, "bad_time")
    hour, minute = int(m["h"]), int(m["m"] or 0)
    suffix = (m["suffix"] or "").casefold().replace(".", "")
    if suffix in {"am", "pm"}:
        if not 1 <= hour <= 12:
            raise ArgumentError(field, "bad_time")
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    if hour > 23 or minute > 59 or int(m["s"] or 0) > 59:
        raise ArgumentError(field, "bad_time")
    return time(hour, minute)


def wall_to_utc(wall: datetime, tz: ZoneInfo, field: str) -> datetime:
    """Place a naive wall time in ``tz`` and return the UTC instant.

    A time in the spring-forward gap does not exist: rather than silently shifting it an hour (what
    zoneinfo does), refuse it so the agent asks again. An ambiguous autumn time takes its *first*
    occurrence (``fold=0``, still summer time): the earlier instant is what a caller means by
    "2:30" before the clocks go back, and the choice is stable across retries.
    """
    local = wall.replace(tzinfo=tz, fold=0)
    try:
        instant = local.astimezone(UTC)
    except OverflowError:
        raise ArgumentError(field, _overflow(wall)) from None
    except ValueError:
        raise ArgumentError(field, "bad_date") from None
    if instant.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
        raise ArgumentError(field, "nonexistent_time")
    return instant


def _offset(raw: str, field: str) -> timezone:
    if raw.upper() == "Z":
        return UTC
    digits = raw[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        raise ArgumentError(field, "bad_time")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if raw[0] == "-" else delta)


def resolve_start(value: str, tz: ZoneInfo, field: str = "start") -> datetime:
    """Turn a start as the agent sends it into a UTC-aware instant.

    Without an offset the value is a wall time in the company's zone (``tz``), see ``wall_to_utc``
    for daylight-saving gaps and overlaps; with ``Z`` or ``±HH:MM`` the offset wins, because the model
    then told us exactly which instant it means. Seconds and fractions are accepted and dropped:
    slots start on whole minutes and dropping them keeps retries' idempotency keys equal.
    """
    if not isinstance(value, str) or not (m := _START.fullmatch(value.strip())):
        raise ArgumentError(field, "bad_time")
    day = calendar_date(m["date"], field, today=date.min)
    hour, minute, second = int(m["h"]), int(m["m"]), int(m["s"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ArgumentError(field, "bad_time")
    wall = datetime.combine(day, time(hour, minute))
    if m["tz"] is None:
        return wall_to_utc(wall, tz, field)
    try:
        return wall.replace(tzinfo=_offset(m["tz"], field)).astimezone(UTC)
    except OverflowError:
        raise ArgumentError(field, _overflow(wall)) from None
    except ValueError:
        raise ArgumentError(field, "bad_date") from None


def _overflow(wall: datetime) -> ArgumentCode:
    """A wall time that leaves the calendar in UTC lies at its very end (too far) or start (past)."""
    return "past" if wall.year == date.min.year else "too_far"


def within_horizon(instant: datetime, now: datetime, field: str) -> datetime:
    """Refuse an instant more than ``HORIZON_DAYS`` from ``now``; the subtraction itself cannot overflow."""
    lead = instant - now
    if lead > timedelta(days=HORIZON_DAYS):
        raise ArgumentError(field, "too_far")
    if lead < -timedelta(days=HORIZON_DAYS):
        raise ArgumentError(field, "past")
    return instant


def phone_e164(value: object, field: str, region: str) -> str:
    """Normalise to E.164; a national number ("030 1234567") is read in the company's region."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ArgumentError(field, "bad_phone")
    e164 = _e164(value.strip(), region.upper())
    if e164 is None:
        raise ArgumentError(field, "bad_phone")
    return e164


# A call's caller ID comes back on each of its function calls, and a caller's number in the arguments
# repeats too; parsing and validating one costs ~17 us. 1024 entries: a few per call in flight.
@functools.lru_cache(maxsize=1024)
def _e164(text: str, region: str) -> str | None:
    """``text`` as E.164 when it is a valid number, read in ``region`` unless it has a ``+``; else None.

    A number written with ``+`` carries its country code, so ``region`` plays no part in reading it: the
    answer is the one ``tenancy.e164_or_none`` gives for the caller ID (the same parse and validity
    check), and taking it from there parses the caller ID of a booking once, not once there and once here.
    """
    if text.startswith("+") and len(text) <= _E164_OR_NONE_MAX_CHARS:
        return e164_or_none(text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


_E164_OR_NONE_MAX_CHARS = 32  # what ``e164_or_none`` reads at all; a longer text is parsed here


def email_address(value: object, field: str = "email") -> str:
    """A syntactically valid address, normalised by email-validator (domain lower-cased).

    No DNS lookup: it would add latency mid-call and fail for new or offline domains.
    """
    if not isinstance(value, str):
        raise ArgumentError(field, "bad_email")
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except (EmailNotValidError, UnicodeError, ValueError):
        raise ArgumentError(field, "bad_email") from None
    return str(result.normalized)
