"""Durable identities: each component of the idempotency key and the fingerprint matters, alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from voicebook.booking.identity import (
    LOOKUP_AFTER,
    LOOKUP_BEFORE,
    attendee_email,
    fingerprint,
    idempotency_key,
    lookup_query,
    own_live_bookings,
)
from voicebook.booking.types import CalendarBooking

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
BASE = ("call_687", 2563193, START)


@pytest.mark.parametrize(
    "other",
    [
        ("call_688", 2563193, START),
        ("call_687", 2563194, START),
        ("call_687", 2563193, START + timedelta(minutes=1)),
    ],
    ids=["call", "event_type", "start"],
)
def test_each_part_of_the_idempotency_key_separates_attempts(other: tuple[str, int, datetime]) -> None:
    assert idempotency_key(*other) != idempotency_key(*BASE)


def test_the_key_names_one_instant_whatever_the_zone() -> None:
    berlin = START.astimezone(datetime.now().astimezone().tzinfo)
    assert idempotency_key("c", 1, berlin) == idempotency_key("c", 1, START) == "c|1|2026-12-03T09:00:00Z"


FP = ("Jane Doe", "jane@example.com", "+491701234567", "window seat")


@pytest.mark.parametrize(
    "other",
    [
        ("John Doe", *FP[1:]),
        (FP[0], "john@example.com", *FP[2:]),
        (*FP[:2], "+491709999999", FP[3]),
        (*FP[:2], None, FP[3]),
        (*FP[:3], "aisle"),
        (*FP[:3], None),
    ],
    ids=["name", "email", "phone", "no-phone", "notes", "no-notes"],
)
def test_each_detail_of_the_fingerprint_makes_a_different_request(
    other: tuple[str, str, str | None, str | None],
) -> None:
    assert fingerprint(*other) != fingerprint(*FP)


def test_the_fingerprint_ignores_case_and_surrounding_space_of_name_and_email() -> None:
    assert fingerprint(" jane DOE ", "JANE@example.com ", FP[2], FP[3]) == fingerprint(*FP)


def test_attendee_email_is_the_callers_or_one_per_call() -> None:
    template = "booking+{call_id}@{company_domain}"
    assert attendee_email("call_1", "me@example.com", template, "salon.example") == "me@example.com"
    ours = attendee_email("call_1", None, template, "salon.example")
    theirs = attendee_email("call_2", None, template, "salon.example")
    assert ours == "booking+call_1@salon.example"
    assert ours != theirs
    assert attendee_email("c a/l!l", None, template, "s.example") == "booking+c-a-l-l@s.example"


def test_one_lookup_window_for_flow_and_reconciler() -> None:
    q = lookup_query("a@example.com", 7, START)
    assert (q.start_from, q.start_to) == (START - LOOKUP_BEFORE, START + LOOKUP_AFTER)
    assert timedelta(minutes=1) == LOOKUP_BEFORE
    assert timedelta(days=1) == LOOKUP_AFTER


def _b(uid: str, attempt: str | None, status: str = "accepted") -> CalendarBooking:
    meta = {"attempt_id": attempt} if attempt else {}
    return CalendarBooking(uid, 1, status, START, START, 7, START, metadata=meta)


def test_own_live_bookings_need_our_attempt_id_and_a_held_slot() -> None:
    found = [
        _b("a", "mine"),
        _b("b", "theirs"),
        _b("c", None),
        _b("d", "mine", "cancelled"),
        _b("e", "mine", "rejected"),
    ]
    assert [b.uid for b in own_live_bookings(found, "mine")] == ["a"]
    assert replace(found[0], status="ACCEPTED").is_live
