"""The duplicate guards: is the booking Cal.com answered with really ours?

Cal.com may answer a create with an *existing* booking (mechanism A: same event type, start and attendee
e-mail). Each guard is one small named function returning a Verdict; ``check_returned_booking`` runs them in
order. Ownership comes first: our own ``attempt_id`` in the metadata proves the booking is ours at any age
(a retry after a timeout legitimately gets our earlier booking back). Layers 3 and 4 need the database and
live in ``booking.recording``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from voicebook.booking.policy import GuardPolicy
from voicebook.booking.types import CalendarBooking

STALE = "STALE BOOKING DETECTED"
MISMATCH = "CALL ID MISMATCH"
DUPLICATE = "DUPLICATE BOOKING ID IN DATABASE"


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
    layer: str  # ownership | layer1 | layer2 | layer3 | layer4 | disabled
    phrase: str  # the greppable phrase for rejections; "accepted" / "idempotent_replay" otherwise
    reason: str
    details: dict[str, str] = field(default_factory=dict)

    @property
    def idempotent_replay(self) -> bool:
        return self.phrase == "idempotent_replay"


def proven_ours(booking: CalendarBooking, expected: Expected, policy: GuardPolicy) -> Verdict | None:
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
        "ownership",
        "idempotent_replay" if earlier else "accepted",
        "Cal.com returned our own earlier booking" if earlier else "metadata carries our attempt id",
    )


def call_id_mismatch(booking: CalendarBooking, expected: Expected) -> Verdict | None:
    """Layer 2: foreign ids in the metadata, or not the attendee, start or event type we sent."""
    theirs_call = booking.metadata.get("call_id")
    theirs_attempt = booking.metadata.get("attempt_id")
    problems = []
    if theirs_call is not None and theirs_call != expected.call_id:
        problems.append(f"metadata.call_id={theirs_call}")
    if theirs_attempt is not None and theirs_attempt != expected.attempt_id:
        problems.append(f"metadata.attempt_id={theirs_attempt}")
    if expected.attendee_email.casefold() not in {e.casefold() for e in booking.attendee_emails}:
        problems.append("attendee e-mail differs")
    if booking.start != expected.start:
        problems.append(f"start {booking.start.isoformat()} differs")
    if booking.event_type_id is not None and booking.event_type_id != expected.event_type_id:
        problems.append(f"event type {booking.event_type_id} differs")
    if not problems:
        return None
    return Verdict(False, "layer2", MISMATCH, "; ".join(problems), {"theirs_call_id": str(theirs_call)})


def stale_booking(
    booking: CalendarBooking, expected: Expected, policy: GuardPolicy, now: datetime
) -> Verdict | None:
    """Layer 1, for bookings whose ownership the metadata cannot prove: created before we asked."""
    skew = timedelta(seconds=policy.clock_skew_seconds)
    if booking.created_at < expected.first_sent_at - skew:
        reason = f"createdAt {booking.created_at.isoformat()} precedes our request"
    elif now - booking.created_at > timedelta(seconds=policy.stale_booking_seconds):
        reason = f"createdAt {booking.created_at.isoformat()} older than {policy.stale_booking_seconds:g}s"
    else:
        return None
    return Verdict(False, "layer1", STALE, reason)


def check_returned_booking(
    booking: CalendarBooking, expected: Expected, policy: GuardPolicy, now: datetime
) -> Verdict:
    """Run the in-memory guards in order; layers 3-4 follow in the database."""
    if not policy.enabled:
        return Verdict(True, "disabled", "accepted", "duplicate prevention disabled (layers 1-3 off)")
    owned = proven_ours(booking, expected, policy)
    if owned is not None:
        return owned
    mismatch = call_id_mismatch(booking, expected)
    if mismatch is not None:
        return mismatch
    if not booking.metadata:
        stale = stale_booking(booking, expected, policy, now)
        if stale is not None:
            return stale
    return Verdict(True, "layer2", "accepted", "attendee, start and event type match")
