"""Every guard condition alone: one discrepancy per case, and the layer-1 boundaries of skew and age.

Each case starts from a booking that matches what we sent in every respect and changes exactly one thing,
so deleting any single check in ``booking/guards.py`` makes exactly its cases fail.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from voicebook.booking.guards import (
    IDENTITY_CHECKS,
    Expected,
    check_returned_booking,
    created_before_request,
    older_than_limit,
)
from voicebook.booking.policy import GuardPolicy
from voicebook.booking.types import Attendee, CalendarBooking, GuardLayer, GuardVerdict

SENT = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
POLICY = GuardPolicy(enabled=True, stale_booking_seconds=30, clock_skew_seconds=5)
EXPECTED = Expected("call_687", "att_mine", "booking+call_687@salon.example", START, 2563193, SENT, SENT)


def booking(**changes: object) -> CalendarBooking:
    """A booking that matches EXPECTED exactly (ours, fresh); ``changes`` alter one thing."""
    base = CalendarBooking(
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
    return replace(base, **changes)  # type: ignore[arg-type]


def verdict_of(
    b: CalendarBooking, *, now: datetime | None = None, expected: Expected = EXPECTED
) -> tuple[str, str]:
    v = check_returned_booking(b, expected, POLICY, now or SENT + timedelta(seconds=2))
    return v.layer, v.phrase


# --- ownership -----------------------------------------------------------------------------------------


def test_our_attempt_id_is_ours_fresh() -> None:
    assert verdict_of(booking()) == (GuardLayer.OWNERSHIP, GuardVerdict.ACCEPTED)


def test_our_attempt_id_is_ours_at_any_age_and_counts_as_replay() -> None:
    old = booking(created_at=SENT - timedelta(days=3))
    assert verdict_of(old, now=SENT + timedelta(days=1)) == (
        GuardLayer.OWNERSHIP,
        GuardVerdict.IDEMPOTENT_REPLAY,
    )


def test_our_attempt_id_created_just_inside_the_skew_is_not_a_replay() -> None:
    inside = booking(created_at=SENT - timedelta(seconds=5))
    assert verdict_of(inside) == (GuardLayer.OWNERSHIP, GuardVerdict.ACCEPTED)
    outside = booking(created_at=SENT - timedelta(seconds=5, microseconds=1))
    assert verdict_of(outside) == (GuardLayer.OWNERSHIP, GuardVerdict.IDEMPOTENT_REPLAY)


def test_on_a_resend_anything_created_before_this_send_is_a_replay() -> None:
    resend = replace(EXPECTED, sent_at=SENT + timedelta(seconds=10), resend=True)
    b = booking(created_at=SENT + timedelta(seconds=8))  # inside the skew of the re-send, but before it
    assert verdict_of(b, expected=resend) == (GuardLayer.OWNERSHIP, GuardVerdict.IDEMPOTENT_REPLAY)


def test_our_attempt_id_with_a_foreign_call_id_is_not_proof() -> None:
    b = booking(metadata={"call_id": "call_688", "attempt_id": "att_mine"})
    assert verdict_of(b) == (GuardLayer.IDENTITY, GuardVerdict.MISMATCH)


# --- layer 2: each identity check alone -----------------------------------------------------------------

ONE_DISCREPANCY = [
    ("foreign_call_id", {"metadata": {"call_id": "call_688"}}),
    ("foreign_attempt_id", {"metadata": {"attempt_id": "att_theirs"}}),
    ("other_attendee", {"metadata": {}, "attendees": (Attendee("Joe", "joe@example.com"),)}),
    ("other_start", {"metadata": {}, "start": START + timedelta(minutes=30)}),
    ("other_event_type", {"metadata": {}, "event_type_id": 999}),
]


@pytest.mark.parametrize(("check", "change"), ONE_DISCREPANCY, ids=[c for c, _ in ONE_DISCREPANCY])
def test_each_identity_check_alone_refuses_with_call_id_mismatch(
    check: str, change: dict[str, object]
) -> None:
    b = booking(**change)
    assert verdict_of(b) == (GuardLayer.IDENTITY, GuardVerdict.MISMATCH)
    # ... and it is exactly this check that found it
    found = [c.__name__ for c in IDENTITY_CHECKS if c(b, EXPECTED) is not None]
    assert found == [check]


def test_identity_checks_are_case_insensitive_for_the_e_mail() -> None:
    b = booking(metadata={}, attendees=(Attendee("Jane", "Booking+CALL_687@Salon.Example"),))
    assert verdict_of(b) == (GuardLayer.IDENTITY, GuardVerdict.ACCEPTED)


def test_unknown_event_type_in_the_answer_is_not_a_mismatch() -> None:
    assert verdict_of(booking(metadata={}, event_type_id=None)) == (
        GuardLayer.IDENTITY,
        GuardVerdict.ACCEPTED,
    )


def test_mismatch_names_every_difference_and_the_foreign_call() -> None:
    b = booking(
        metadata={"call_id": "call_688", "attempt_id": "att_theirs"}, start=START + timedelta(hours=1)
    )
    v = check_returned_booking(b, EXPECTED, POLICY, SENT)
    assert v.reason.count(";") == 2
    assert v.details == {"theirs_call_id": "call_688"}


# --- layer 1: both branches, at their boundaries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("created_offset", "stale"),
    [
        (-timedelta(seconds=5), False),  # exactly the allowed skew before our send
        (-timedelta(seconds=5, microseconds=1), True),  # just beyond it
        (timedelta(0), False),
    ],
)
def test_layer1_created_before_request_boundary(created_offset: timedelta, stale: bool) -> None:
    b = booking(metadata={}, created_at=SENT + created_offset)
    assert (created_before_request(b, EXPECTED, POLICY) is not None) is stale
    expected = (
        (GuardLayer.FRESHNESS, GuardVerdict.STALE) if stale else (GuardLayer.IDENTITY, GuardVerdict.ACCEPTED)
    )
    assert verdict_of(b, now=SENT + timedelta(seconds=1)) == expected


@pytest.mark.parametrize(
    ("age", "stale"),
    [(timedelta(seconds=30), False), (timedelta(seconds=30, microseconds=1), True)],
)
def test_layer1_older_than_limit_boundary(age: timedelta, stale: bool) -> None:
    created = SENT + timedelta(seconds=1)
    b = booking(metadata={}, created_at=created)
    assert (older_than_limit(b, POLICY, created + age) is not None) is stale
    expected = (
        (GuardLayer.FRESHNESS, GuardVerdict.STALE) if stale else (GuardLayer.IDENTITY, GuardVerdict.ACCEPTED)
    )
    assert verdict_of(b, now=created + age) == expected


def test_layer1_only_judges_bookings_without_metadata() -> None:
    # An old booking that carries metadata is judged by ownership/identity, never by age alone.
    b = booking(created_at=SENT - timedelta(days=1))
    assert verdict_of(b, now=SENT + timedelta(hours=1))[0] == GuardLayer.OWNERSHIP


def test_disabled_guards_accept_anything() -> None:
    off = GuardPolicy(enabled=False)
    v = check_returned_booking(booking(metadata={"call_id": "call_688"}), EXPECTED, off, SENT)
    assert (v.accepted, v.layer) == (True, GuardLayer.DISABLED)
