"""What a calendar backend can answer, as the booking domain sees it.

VoicebookError
└── BookingError
    └── CalendarError                 (raised by a CalendarGateway)
        ├── SlotUnavailable           the slot is taken or not offered (nothing was booked)
        ├── CalendarRejected          any other refusal (4xx): status, code, message
        ├── CalendarUnavailable       nothing took effect (nothing sent, or a 5xx/timeout on a read)
        │   ├── RateLimited           429; reset_seconds says when to try again
        │   └── CalendarDisconnected  the company's own credential was refused or revoked
        └── OutcomeUnknown            a write may have taken effect (any 5xx, read timeout, reset after send)

Business outcomes of a booking (a slot taken, a foreign booking refused, a conflicting retry) are not
exceptions: the use cases answer them as ``booking.outcomes.Outcome``.
"""

from __future__ import annotations

from voicebook.errors import VoicebookError


class BookingError(VoicebookError):
    """Base of the booking domain's expected outcomes."""


class CalendarError(BookingError):
    """A calendar backend failed or refused; subclasses say whether anything happened."""

    status_code = 502


class SlotUnavailable(CalendarError):
    """The slot is taken or not offered; nothing was booked."""

    status_code = 409


class CalendarRejected(CalendarError):
    """The calendar refused the request for another reason (a 4xx)."""

    status_code = 422

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"calendar rejected the request ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.detail = message


class CalendarUnavailable(CalendarError):
    """The request did not take effect (connection refused, 5xx before processing): safe to retry."""

    status_code = 503


class RateLimited(CalendarUnavailable):
    """The calendar throttled us; ``reset_seconds`` says when the window reopens."""

    status_code = 429

    def __init__(self, message: str, reset_seconds: float | None = None) -> None:
        super().__init__(message)
        self.reset_seconds = reset_seconds


class OutcomeUnknown(CalendarError):
    """The request may have reached the calendar and taken effect: resolve by lookup, never resend."""

    status_code = 504


class CalendarDisconnected(CalendarUnavailable):
    """The company's own calendar credential was refused or revoked: nothing was done, and nothing will
    be until an operator gives it a new one (the company is marked *disconnected*)."""

    status_code = 503
