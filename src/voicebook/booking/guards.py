"""The duplicate guards: is the booking Cal.com answered with really ours?

Cal.com may answer a create with an *existing* booking (mechanism A: same event type, start and attendee
e-mail). ``check_returned_booking`` runs the checks below in order and answers one ``Verdict``:

1. **Ownership**: our own ``attempt_id`` (and no foreign ``call_id``) in the metadata proves the booking is
   ours at any age (a retry after a timeout legitimately gets our earlier booking back).
2. **Layer 2, identity** (``CALL ID MISMATCH``): each named check compares one thing we sent with what came
   back — a foreign call id, a foreign attempt id, another attendee, another start, another event type.
3. **Layer 1, freshness** (``STALE BOOKING DETECTED``), only for a booking whose metadata is empty (so
   ownership cannot be proven): created before our request left, or older than the age limit.

Layers 3 and 4 need the database and live in ``booking.recording``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from voicebook.booking.policy import GuardPolicy
from voicebook.booking.types import CalendarBooking, GuardLayer, GuardVerdict


@dataclass(frozen=True)
class Expected:
    """What we sent, for comparison with what came back."""

    call_id: str
    attempt_id: str
    attendee_email: str
    start: datetime
    event_type_id: int
    first_sent_at: datetime
    sent_at: datetime  # this try's send; later than first_sent_at on a re-send
    resend: bool = False


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    layer: GuardLayer
    phrase: GuardVerdict  # the greppable phrase for rejections; accepted / idempotent_replay otherwise
    reason: str
    details: dict[str, str] = field(default_factory=dict)

    @property
    def idempotent_replay(self) -> bool:
        return self.phrase == GuardVerdict.IDEMPOTENT_REPLAY


def owned_by_attempt(booking: CalendarBooking, expected: Expected, policy: GuardPolicy) -> Verdict | None:
    """Our attempt id in the metadata: ours, whatever its age; older than our send means a replay."""
    if booking.metadata.get("attempt_id") != expected.attempt_id:
        return None
    if booking.metadata.get("call_id") not in (None, expected.call_id):
        return None
    skew = timedelta(seconds=policy.clock_skew_seconds)
    earlier = booking.created_at < expected.sent_at - skew or (
        expected.resend and booking.created_at < expected.sent_at
    )
    return Verdict(
        True,
        GuardLayer.OWNERSHIP,
        GuardVerdict.IDEMPOTENT_REPLAY if earlier else GuardVerdict.ACCEPTED,
        "Cal.com returned our own earlier booking" if earlier else "metadata carries our attempt id",
    )


# --- layer 2: one named check per thing we sent; each returns what differs, or None ------------------


def foreign_call_id(booking: CalendarBooking, expected: Expected) -> str | None:
    theirs = booking.metadata.get("call_id")
    return f"metadata.call_id={theirs}" if theirs is not None and theirs != expected.call_id else None


def foreign_attempt_id(booking: CalendarBooking, expected: Expected) -> str | None:
    theirs = booking.metadata.get("attempt_id")
    return f"metadata.attempt_id={theirs}" if theirs is not None and theirs != expected.attempt_id else None


def other_attendee(booking: CalendarBooking, expected: Expected) -> str | None:
    ours = expected.attendee_email.casefold()
    return None if ours in {e.casefold() for e in booking.attendee_emails} else "attendee e-mail differs"


def other_start(booking: CalendarBooking, expected: Expected) -> str | None:
    return None if booking.start == expected.start else f"start {booking.start.isoformat()} differs"


def other_event_type(booking: CalendarBooking, expected: Expected) -> str | None:
    if booking.event_type_id is None or booking.event_type_id == expected.event_type_id:
        return None
    return f"event type {booking.event_type_id} differs"


IDENTITY_CHECKS: tuple[Callable[[CalendarBooking, Expected], str | None], ...] = (
    foreign_call_id,
    foreign_attempt_id,
    other_attendee,
    other_start,
    other_event_type,
)


def identity_mismatch(booking: CalendarBooking, expected: Expected) -> Verdict | None:
    """Layer 2: any identity check that finds a difference refuses the booking, naming every one."""
    problems = [p for p in (check(booking, expected) for check in IDENTITY_CHECKS) if p is not None]
    if not problems:
        return None
    theirs = {"theirs_call_id": str(booking.metadata.get("call_id"))}
    return Verdict(False, GuardLayer.IDENTITY, GuardVerdict.MISMATCH, "; ".join(problems), theirs)


# --- layer 1: two named branches ---------------------------------------------------------------------


def created_before_request(booking: CalendarBooking, expected: Expected, policy: GuardPolicy) -> str | None:
    """Cal.com says it was created before our first request left (beyond the allowed clock skew)."""
    if booking.created_at < expected.first_sent_at - timedelta(seconds=policy.clock_skew_seconds):
        return f"createdAt {booking.created_at.isoformat()} precedes our request"
    return None


def older_than_limit(booking: CalendarBooking, policy: GuardPolicy, now: datetime) -> str | None:
    """The booking is older than ``stale_booking_seconds``: a fresh create cannot be that old."""
    if now - booking.created_at > timedelta(seconds=policy.stale_booking_seconds):
        return f"createdAt {booking.created_at.isoformat()} older than {policy.stale_booking_seconds:g}s"
    return None


def stale_booking(
    booking: CalendarBooking, expected: Expected, policy: GuardPolicy, now: datetime
) -> Verdict | None:
    """Layer 1, for bookings whose ownership the metadata cannot prove."""
    reason = created_before_request(booking, expected, policy) or older_than_limit(booking, policy, now)
    return Verdict(False, GuardLayer.FRESHNESS, GuardVerdict.STALE, reason) if reason else None


def check_returned_booking(
    booking: CalendarBooking, expected: Expected, policy: GuardPolicy, now: datetime
) -> Verdict:
    """Run the in-memory guards in order; layers 3-4 follow in the database."""
    if not policy.enabled:
        return Verdict(
            True, GuardLayer.DISABLED, GuardVerdict.ACCEPTED, "duplicate prevention disabled (layers 1-3 off)"
        )
    owned = owned_by_attempt(booking, expected, policy)
    if owned is not None:
        return owned
    mismatch = identity_mismatch(booking, expected)
    if mismatch is not None:
        return mismatch
    if not booking.metadata:
        stale = stale_booking(booking, expected, policy, now)
        if stale is not None:
            return stale
    return Verdict(True, GuardLayer.IDENTITY, GuardVerdict.ACCEPTED, "attendee, start and event type match")
