"""Retell function arguments → typed commands, before anything touches the database or Cal.com.

Validation happens here, once, so the booking code never sees a naive datetime, an un-normalised
phone number, a start in the past or one beyond ``fields.HORIZON_DAYS`` (so no later arithmetic on it
can overflow; the service's own, shorter booking window is the domain's check, ``booking.window``),
and so every refusal is an ``ArgumentError`` the agent can turn into a sentence. Argument names
follow ``deploy/retell/tools.json``; the names from Retell's own booking example (``slot_start``,
``attendee_*``) are accepted too, since prompts copied from Retell's templates make models use them. An
``args.timezone`` is ignored on purpose: the company's zone is authoritative, and a start with an
explicit offset already says which instant it means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import ClassVar, Final
from zoneinfo import ZoneInfo

from voicebook.retell import fields
from voicebook.retell.errors import ArgumentError
from voicebook.retell.fields import resolve_start

__all__ = [
    "FUNCTION_NAMES",
    "ArgumentError",
    "BookAppointment",
    "CancelAppointment",
    "CheckAvailability",
    "Command",
    "RescheduleAppointment",
    "parse_arguments",
    "resolve_start",
]


@dataclass(frozen=True, slots=True)
class CheckAvailability:
    """Free slots for ``service`` on ``day`` (company zone), from ``earliest`` on if a time was given."""

    function: ClassVar[str] = "check_availability"
    service: str
    day: date
    time_of_day: time | None = None
    earliest: datetime | None = None  # UTC instant of day + time_of_day


@dataclass(frozen=True, slots=True)
class BookAppointment:
    """Book ``service`` at ``start`` (UTC, in the future); ``phone`` is E.164, the caller's if none given."""

    function: ClassVar[str] = "book_appointment"
    service: str
    start: datetime
    name: str
    phone: str | None = None
    email: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAppointment:
    """Cancel one of the caller's own appointments; ``start`` (UTC) picks one when there are several.

    ``phone`` is only what the model said (E.164): it can narrow the caller's own appointments, never
    reach anyone else's. Who the caller is comes from Retell's signed call, not from here.
    """

    function: ClassVar[str] = "cancel_appointment"
    phone: str | None = None
    start: datetime | None = None


@dataclass(frozen=True, slots=True)
class RescheduleAppointment:
    """Move one of the caller's own appointments (picked by ``start`` if several) to ``new_start``."""

    function: ClassVar[str] = "reschedule_appointment"
    new_start: datetime
    phone: str | None = None
    start: datetime | None = None


Command = CheckAvailability | BookAppointment | CancelAppointment | RescheduleAppointment

# Contract name first; the rest are names models have been seen to use.
_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "service": ("service", "service_name"),
    "date": ("date", "day"),
    "time": ("time",),
    "start": ("start", "slot_start", "start_time"),
    "new_start": ("new_start", "new_slot_start", "new_start_time"),
    "name": ("name", "attendee_name", "customer_name"),
    "phone": ("phone", "attendee_phone", "phone_number"),
    "email": ("email", "attendee_email"),
    "notes": ("notes", "note"),
}


@dataclass(frozen=True, slots=True)
class _Context:
    args: Mapping[str, object]
    tz: ZoneInfo
    region: str
    now: datetime
    caller_phone: str | None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def get(self, field: str) -> object | None:
        """The first present value under the field's name or aliases; placeholders count as absent."""
        for key in _ALIASES[field]:
            value = self.args.get(key)
            if value is not None and not fields.is_absent(value):  # most aliases are simply not there
                return value
        return None

    def required(self, field: str) -> object:
        value = self.get(field)
        if value is None:
            raise ArgumentError(field, "missing")
        return value

    def future_start(self, field: str) -> datetime:
        raw = self.required(field)
        if not isinstance(raw, str):
            raise ArgumentError(field, "bad_time")
        start = fields.within_horizon(resolve_start(raw, self.tz, field), self.now, field)
        if start < self.now:
            raise ArgumentError(field, "past")
        return start

    def optional_start(self, field: str) -> datetime | None:
        raw = self.get(field)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ArgumentError(field, "bad_time")
        return fields.within_horizon(resolve_start(raw, self.tz, field), self.now, field)

    def phone(self) -> str | None:
        """The phone argument, else the number the caller rings from (unusable → None, not an error:
        a withheld or odd caller id is not the caller's mistake)."""
        raw = self.get("phone")
        if raw is not None:
            return fields.phone_e164(raw, "phone", self.region)
        if self.caller_phone:
            try:
                return fields.phone_e164(self.caller_phone, "phone", self.region)
            except ArgumentError:
                return None
        return None

    def phone_argument(self) -> str | None:
        """Only the ``phone`` argument (a narrowing of the caller's own appointments), never a fallback."""
        raw = self.get("phone")
        return None if raw is None else fields.phone_e164(raw, "phone", self.region)

    def service(self) -> str:
        return fields.text(self.required("service"), "service", max_len=fields.SERVICE_MAX)


def _check_availability(ctx: _Context) -> CheckAvailability:
    service = ctx.service()
    raw_date = ctx.get("date")
    today = ctx.today
    day = today if raw_date is None else fields.calendar_date(raw_date, "date", today=today)
    if day < today:
        raise ArgumentError("date", "past")
    if (day - today).days > fields.HORIZON_DAYS:
        raise ArgumentError("date", "too_far")
    raw_time = ctx.get("time")
    if raw_time is None:
        return CheckAvailability(service=service, day=day)
    at = fields.time_of_day(raw_time, "time")
    earliest = fields.wall_to_utc(datetime.combine(day, at), ctx.tz, "time")
    if earliest < ctx.now:
        raise ArgumentError("time", "past")
    return CheckAvailability(service=service, day=day, time_of_day=at, earliest=earliest)


def _book_appointment(ctx: _Context) -> BookAppointment:
    service = ctx.service()
    start = ctx.future_start("start")
    name = fields.person_name(ctx.get("name"))
    raw_email = ctx.get("email")
    raw_notes = ctx.get("notes")
    return BookAppointment(
        service=service,
        start=start,
        name=name,
        phone=ctx.phone(),
        email=None if raw_email is None else fields.email_address(raw_email),
        notes=None if raw_notes is None else fields.text(raw_notes, "notes", max_len=fields.NOTES_MAX),
    )


def _cancel_appointment(ctx: _Context) -> CancelAppointment:
    # ``start`` only identifies an existing appointment, so it is not checked against ``now``: an
    # appointment earlier today is simply not found by the lookup.
    return CancelAppointment(phone=ctx.phone_argument(), start=ctx.optional_start("start"))


def _reschedule_appointment(ctx: _Context) -> RescheduleAppointment:
    # Moving an appointment to its own time is not an error: the domain answers it as "already then".
    return RescheduleAppointment(
        phone=ctx.phone_argument(), start=ctx.optional_start("start"), new_start=ctx.future_start("new_start")
    )


_PARSERS: Final[Mapping[str, Callable[[_Context], Command]]] = {
    CheckAvailability.function: _check_availability,
    BookAppointment.function: _book_appointment,
    CancelAppointment.function: _cancel_appointment,
    RescheduleAppointment.function: _reschedule_appointment,
}
FUNCTION_NAMES: Final[frozenset[str]] = frozenset(_PARSERS)


def parse_arguments(
    function_name: str,
    args: Mapping[str, object],
    *,
    tz: ZoneInfo,
    region: str,
    now: datetime,
    caller_phone: str | None,
) -> Command:
    """Validate one function call's arguments; raises only ``ArgumentError`` for any JSON input.

    ``now`` is passed in (aware) rather than read from the clock so "past" is decided against the
    same instant the rest of the request uses, and tests can pin it.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    parser = _PARSERS.get(function_name) if isinstance(function_name, str) else None
    if parser is None:
        raise ArgumentError("name", "unknown_function")
    if not isinstance(args, Mapping):
        raise ArgumentError("args", "invalid")
    ctx = _Context(args=args, tz=tz, region=region, now=now, caller_phone=caller_phone)
    return parser(ctx)
