"""The guards' verdicts in full: accepted or not, layer, phrase and the reason written to the audit row.

``guard_events.reason`` is what an operator reads when a booking was refused or replayed, so each verdict's
text is pinned with the rest of it. Also the re-send boundary of the ownership layer and the lookup window.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from voicebook.booking.guards import Expected, check_returned_booking, other_attendee
from voicebook.booking.identity import lookup_query
from voicebook.booking.policy import GuardPolicy
from voicebook.booking.types import Attendee, BookingQuery, CalendarBooking, GuardLayer, GuardVerdict

SENT = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
POLICY = GuardPolicy(enabled=True, stale_booking_seconds=30, clock_skew_seconds=5)
EXPECTED = Expected("call_687", "att_mine", "booking+call_687@salon.example", START, 2563193, SENT, SENT)
OURS = CalendarBooking(
    uid="uid_1",
    id=1,
    status="accepted",
    start=START,
    end=START + timedelta(minutes=30),
    event_type_id=2563193,
    created_at=SENT + timedelta(seconds=1),
    attendees=(Attendee("Jane", "booking+call_687@salon.example"),),
    metadata={"call_id": "call_687", "attempt_id": "att_mine"},
)
STALE = f"createdAt {(SENT - timedelta(minutes=1)).isoformat()} precedes our request"

VERDICTS = [
    # (booking, policy, accepted, layer, phrase, reason)
    (OURS, POLICY, True, GuardLayer.OWNERSHIP, GuardVerdict.ACCEPTED, "metadata carries our attempt id"),
    (
        replace(OURS, created_at=SENT - timedelta(hours=1)),
        POLICY,
        True,
        GuardLayer.OWNERSHIP,
        GuardVerdict.IDEMPOTENT_REPLAY,
        "Cal.com returned our own earlier booking",
    ),
    (
        replace(OURS, metadata={}),
        POLICY,
        True,
        GuardLayer.IDENTITY,
        GuardVerdict.ACCEPTED,
        "attendee, start and event type match",
    ),
    (
        replace(OURS, metadata={}, attendees=(Attendee("Joe", "joe@example.com"),)),
        POLICY,
        False,
        GuardLayer.IDENTITY,
        GuardVerdict.MISMATCH,
        "attendee e-mail differs",
    ),
    (
        replace(OURS, metadata={"attempt_id": "att_x"}, event_type_id=9),
        POLICY,
        False,
        GuardLayer.IDENTITY,
        GuardVerdict.MISMATCH,
        "metadata.attempt_id=att_x; event type 9 differs",
    ),
    (
        replace(OURS, metadata={}, created_at=SENT - timedelta(minutes=1)),
        POLICY,
        False,
        GuardLayer.FRESHNESS,
        GuardVerdict.STALE,
        STALE,
    ),
    (
        replace(OURS, metadata={"call_id": "call_688"}),
        GuardPolicy(enabled=False),
        True,
        GuardLayer.DISABLED,
        GuardVerdict.ACCEPTED,
        "duplicate prevention disabled (layers 1-3 off)",
    ),
]


@pytest.mark.parametrize(("booking", "policy", "accepted", "layer", "phrase", "reason"), VERDICTS)
def test_each_verdict_in_full(
    booking: CalendarBooking,
    policy: GuardPolicy,
    accepted: bool,
    layer: GuardLayer,
    phrase: GuardVerdict,
    reason: str,
) -> None:
    v = check_returned_booking(booking, EXPECTED, policy, SENT + timedelta(seconds=2))
    assert (v.accepted, v.layer, v.phrase, v.reason) == (accepted, layer, phrase, reason)
    assert v.accepted is accepted  # a bool, not merely falsy


@pytest.mark.parametrize(
    ("created", "phrase"),
    [
        (timedelta(seconds=-1), GuardVerdict.IDEMPOTENT_REPLAY),  # before this send, inside the skew
        (timedelta(0), GuardVerdict.ACCEPTED),  # at this send: made by it
    ],
)
def test_on_a_resend_the_send_itself_is_the_boundary(created: timedelta, phrase: GuardVerdict) -> None:
    resend = replace(EXPECTED, sent_at=SENT + timedelta(seconds=10), resend=True)
    b = replace(OURS, created_at=resend.sent_at + created)
    assert check_returned_booking(b, resend, POLICY, resend.sent_at).phrase == phrase


def test_other_attendee_names_the_difference() -> None:
    assert other_attendee(replace(OURS, attendees=()), EXPECTED) == "attendee e-mail differs"


def test_lookup_query_spans_a_minute_before_to_a_day_after() -> None:
    assert lookup_query("a@example.com", 42, START) == BookingQuery(
        "a@example.com", 42, START - timedelta(minutes=1), START + timedelta(days=1)
    )
