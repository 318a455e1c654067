"""Cancel and reschedule (``booking/changes.py``) against FakeCalendar, on every database backend.

Ownership, the write-ahead change attempt and what it records, the hold on the appointment, every answer
Cal.com can give (done, refused, already cancelled, slot taken, lost answer) and the lookup that resolves
an ambiguous one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs
from tests.factories import make_tenant
from tests.fakes import FakeCalendar

from voicebook.booking import attempts, changes, flow, outcomes
from voicebook.booking.errors import (
    CalendarRejected,
    CalendarUnavailable,
    OutcomeUnknown,
    SlotUnavailable,
)
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.tenancy import CallContext, ServiceRef, Tenant
from voicebook.booking.types import AnswerStatus, AppointmentStatus, AttemptState, Intent
from voicebook.booking.window import BookingWindow
from voicebook.db.models import Appointment, BookingAttempt, Call, Service
from voicebook.errors import InvariantViolated

Sm = async_sessionmaker[AsyncSession]
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
LATER = START + timedelta(hours=1)
CALLER = "+491701234567"
OTHER_CALLER = "+491709999999"
SALON = "+49301234567"
FAST = BookingPolicy(wait_in_flight_seconds=0.3)


async def _setup(sm: Sm, cal: FakeCalendar, *starts: datetime) -> tuple[Tenant, ServiceRef, list[int]]:
    """A tenant and, for each start, an appointment booked by call_book from CALLER."""
    tenant, service = await make_tenant(sm)
    cal.slots = [*starts, LATER, START + timedelta(hours=2), START + timedelta(hours=3)]
    ids = []
    for start in starts:
        outcome = await flow.book(
            sm,
            cal,
            BookingPolicy(),
            tenant,
            CallContext("call_book", CALLER, SALON),
            flow.BookArgs(service=service, start=start, name="Jörg Müller", phone=CALLER),
        )
        assert outcome.appointment is not None
        ids.append(outcome.appointment.id)
    return tenant, service, ids


async def _appointment(sm: Sm, appointment_id: int) -> Appointment:
    async with sm() as session:
        return await session.get_one(Appointment, appointment_id)


async def _change_attempts(sm: Sm) -> list[BookingAttempt]:
    async with sm() as session:
        rows = await session.execute(
            select(BookingAttempt).where(BookingAttempt.intent != Intent.BOOK).order_by(BookingAttempt.id)
        )
        return list(rows.scalars())


async def _cancel(
    sm: Sm,
    cal: FakeCalendar,
    tenant: Tenant,
    *,
    call_id: str = "call_change",
    caller: str | None = CALLER,
    phone: str | None = None,
    start: datetime | None = None,
    policy: BookingPolicy = FAST,
) -> outcomes.Outcome:
    ctx = CallContext(call_id, caller, SALON)
    return await changes.cancel(sm, cal, policy, tenant, ctx, phone=phone, start=start)


async def _move(
    sm: Sm,
    cal: FakeCalendar,
    tenant: Tenant,
    new_start: datetime = LATER,
    *,
    call_id: str = "call_change",
    caller: str | None = CALLER,
    phone: str | None = None,
    start: datetime | None = None,
    policy: BookingPolicy = FAST,
) -> outcomes.Outcome:
    ctx = CallContext(call_id, caller, SALON)
    return await changes.reschedule(
        sm, cal, policy, tenant, ctx, phone=phone, start=start, new_start=new_start
    )


# --- identities ------------------------------------------------------------------------------------------


def test_change_key_names_call_appointment_intent_and_target_in_utc() -> None:
    berlin = datetime(2026, 12, 3, 10, 0, tzinfo=UTC).astimezone()
    assert changes.change_key("call_1", 7, Intent.RESCHEDULE, berlin) == (
        "call_1|appointment:7|reschedule|2026-12-03T10:00:00Z"
    )
    assert changes.change_key("call_1", 7, Intent.CANCEL, None) == "call_1|appointment:7|cancel|-"


def test_change_key_is_utc_whatever_the_servers_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    target = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        key = changes.change_key("call_1", 7, Intent.RESCHEDULE, target)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert key == "call_1|appointment:7|reschedule|2026-12-03T10:00:00Z"


def test_change_fingerprint_is_the_hash_of_intent_appointment_and_target() -> None:
    target = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert (
        changes.change_fingerprint(Intent.RESCHEDULE, 7, target)
        == hashlib.sha256(f"reschedule\x1f7\x1f{target.isoformat()}".encode()).hexdigest()
    )
    assert (
        changes.change_fingerprint(Intent.CANCEL, 7, None) == hashlib.sha256(b"cancel\x1f7\x1f").hexdigest()
    )


# --- ownership -------------------------------------------------------------------------------------------

OWNERSHIP = [
    # (call id, signed caller id, phone argument, finds the appointment booked by call_book from CALLER)
    ("call_book", None, None, True),  # booked in this call, caller id withheld
    ("call_book", "anonymous", None, True),
    ("call_change", CALLER, None, True),  # another call from the same signed number
    ("call_change", CALLER, CALLER, True),  # the phone argument names the customer's own number
    ("call_change", CALLER, OTHER_CALLER, False),  # ... and narrows: another number finds nothing
    ("call_change", OTHER_CALLER, None, False),  # another caller
    ("call_change", OTHER_CALLER, CALLER, False),  # naming the owner's number never widens
    ("call_change", None, CALLER, False),  # withheld: only what this call booked
    ("call_change", "sip:alice@example.com", None, False),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("call_id", "caller", "phone", "found"), OWNERSHIP)
async def test_ownership_of_a_cancel(
    sessionmaker: Sm, call_id: str, caller: str | None, phone: str | None, found: bool
) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    outcome = await _cancel(sessionmaker, cal, tenant, call_id=call_id, caller=caller, phone=phone)
    if found:
        assert outcome.status == AnswerStatus.CANCELLED
        assert outcome.appointment is not None
        assert outcome.appointment.id == appointment_id
    else:
        assert (outcome.status, outcome.reason, outcome.appointment) == (
            AnswerStatus.NOT_FOUND,
            "no_appointment",
            None,
        )
        assert cal.changes == []
        assert (await _appointment(sessionmaker, appointment_id)).status == AppointmentStatus.BOOKED


@pytest.mark.asyncio
async def test_phone_argument_matches_the_number_given_at_booking(sessionmaker: Sm) -> None:
    """Booked from a withheld number with a phone argument: that call may narrow by it."""
    cal = FakeCalendar(slots=[START])
    tenant, service = await make_tenant(sessionmaker)
    await flow.book(
        sessionmaker,
        cal,
        BookingPolicy(),
        tenant,
        CallContext("call_anon", None, SALON),
        flow.BookArgs(service=service, start=START, name="Jane", phone="+491705555555"),
    )
    found = await _cancel(sessionmaker, cal, tenant, call_id="call_anon", caller=None, phone="+491705555555")
    assert found.status == AnswerStatus.CANCELLED


@pytest.mark.asyncio
async def test_only_upcoming_booked_appointments_of_this_company_count(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (past, cancelled, other_company, upcoming) = await _setup(
        sessionmaker,
        cal,
        START,
        START + timedelta(hours=4),
        START + timedelta(hours=5),
        START + timedelta(hours=6),
    )
    now = FAST.clock()
    other, _ = await make_tenant(sessionmaker, slug="other", number="+49307654321")
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Appointment).where(Appointment.id == past).values(start_at=now))
        await session.execute(
            update(Appointment).where(Appointment.id == cancelled).values(status=AppointmentStatus.CANCELLED)
        )
        await session.execute(
            update(Appointment).where(Appointment.id == other_company).values(company_id=other.company_id)
        )
    async with sessionmaker() as session:
        owned = await changes.owned_appointments(
            session, tenant, CallContext("call_book", CALLER, SALON), None, now
        )
    assert [o.appointment.id for o in owned] == [upcoming]
    assert owned[0].service == "Haarschnitt"
    assert owned[0].window == BookingWindow(365, 0)


@pytest.mark.asyncio
async def test_owned_appointments_carry_their_services_window_and_are_ordered(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, ids = await _setup(sessionmaker, cal, LATER, START)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Service).values(max_days_ahead=14, min_notice_minutes=60))
        await session.execute(update(Appointment).where(Appointment.id == ids[0]).values(service_id=None))
    async with sessionmaker() as session:
        owned = await changes.owned_appointments(
            session, tenant, CallContext("call_book", None, SALON), None, FAST.clock()
        )
    assert [o.appointment.id for o in owned] == [ids[1], ids[0]]  # by start
    assert [(o.service, o.window) for o in owned] == [
        ("Haarschnitt", BookingWindow(14, 60)),
        ("", BookingWindow()),
    ]


@pytest.mark.asyncio
async def test_several_matches_answer_ambiguous_with_options_and_start_picks_one(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (first, second) = await _setup(sessionmaker, cal, START, START + timedelta(hours=3))
    ambiguous = await _cancel(sessionmaker, cal, tenant)
    assert (ambiguous.status, ambiguous.reason) == (AnswerStatus.AMBIGUOUS, "several_appointments")
    assert ambiguous.options == (START, START + timedelta(hours=3))
    assert cal.changes == []
    picked = await _cancel(sessionmaker, cal, tenant, start=START + timedelta(hours=3))
    assert picked.appointment is not None
    assert picked.appointment.id == second
    assert (await _appointment(sessionmaker, first)).status == AppointmentStatus.BOOKED
    none = await _cancel(sessionmaker, cal, tenant, start=START + timedelta(minutes=1))
    assert (none.status, none.reason) == (AnswerStatus.NOT_FOUND, "no_appointment")


# --- cancel --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cancel_writes_ahead_and_records_everything(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, service, (appointment_id,) = await _setup(sessionmaker, cal, START)
    before = await _appointment(sessionmaker, appointment_id)
    outcome = await _cancel(sessionmaker, cal, tenant, phone=CALLER)
    assert outcome == outcomes.Outcome(
        AnswerStatus.CANCELLED,
        appointment=outcomes.AppointmentView(appointment_id, before.calcom_booking_uid, START, "Haarschnitt"),
    )
    assert cal.changes == [("cancel", before.calcom_booking_uid, None, changes.CANCEL_REASON)]
    assert not cal.bookings[before.calcom_booking_uid].is_live
    after = await _appointment(sessionmaker, appointment_id)
    assert after.status == AppointmentStatus.CANCELLED
    assert (after.change_attempt_id, after.change_locked_until) == (None, None)
    assert after.synced_at is not None
    assert after.updated_at > before.updated_at
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.RECORDED
    assert attempt.intent == Intent.CANCEL
    assert attempt.idempotency_key == f"call_change|appointment:{appointment_id}|cancel|-"
    assert attempt.fingerprint == changes.change_fingerprint(Intent.CANCEL, appointment_id, None)
    assert (attempt.call_id, attempt.company_id, attempt.service_id) == (
        "call_change",
        tenant.company_id,
        service.id,
    )
    assert attempt.event_type_id == service.event_type_id
    assert attempt.start_at.replace(tzinfo=UTC) == START
    assert (attempt.attendee_name, attempt.attendee_email) == (before.attendee_name, before.attendee_email)
    assert (attempt.appointment_id, attempt.target_start_at) == (appointment_id, None)
    assert attempt.source_booking_uid == before.calcom_booking_uid
    assert attempt.request_snapshot == {
        "function": "cancel_appointment",
        "phone": CALLER,
        "start": None,
        "new_start": None,
    }
    assert attempt.answer_snapshot == {"status": "cancelled"}
    assert attempt.guard_verdict == "cancel_cancelled"
    assert attempt.tries == 1
    assert attempt.first_sent_at is not None
    assert attempt.locked_until is None


@pytest.mark.asyncio
async def test_a_retried_cancel_replays_without_a_second_request(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (_appointment_id,) = await _setup(sessionmaker, cal, START)
    first = await _cancel(sessionmaker, cal, tenant)
    again = await _cancel(sessionmaker, cal, tenant)
    assert again == replace(first, replayed=True)
    assert len(cal.changes) == 1
    assert len(await _change_attempts(sessionmaker)) == 1
    # another call of the same caller has no earlier change to replay: the appointment is gone for it
    other = await _cancel(sessionmaker, cal, tenant, call_id="call_other")
    assert (other.status, other.reason) == (AnswerStatus.NOT_FOUND, "no_appointment")


@pytest.mark.asyncio
async def test_a_retry_naming_the_start_replays_only_that_change(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START, START + timedelta(hours=3))
    await _cancel(sessionmaker, cal, tenant, start=START)
    await _cancel(sessionmaker, cal, tenant, start=START + timedelta(hours=3))
    # two earlier cancels of this call: which one a start-less retry means is unclear, so nothing replays
    unclear = await _cancel(sessionmaker, cal, tenant)
    assert (unclear.status, unclear.replayed) == (AnswerStatus.NOT_FOUND, False)
    named = await _cancel(sessionmaker, cal, tenant, start=START)
    assert (named.status, named.replayed) == (AnswerStatus.CANCELLED, True)
    assert named.appointment is not None
    assert named.appointment.start == START
    assert len(cal.changes) == 2


@pytest.mark.asyncio
async def test_cancel_already_cancelled_upstream_converges(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    cal.change_errors = [CalendarRejected(400, "BadRequestException", "This booking has been cancelled")]
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.CANCELLED
    assert (await _appointment(sessionmaker, appointment_id)).status == AppointmentStatus.CANCELLED
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.RECORDED


REFUSALS = [
    # (intent, error, answer status, reason)
    (
        Intent.CANCEL,
        CalendarRejected(403, "Forbidden", "not allowed"),
        AnswerStatus.UPSTREAM_ERROR,
        "calendar_refused",
    ),
    (
        Intent.CANCEL,
        CalendarRejected(400, "Bad", "bad request"),
        AnswerStatus.UPSTREAM_ERROR,
        "calendar_refused",
    ),
    (Intent.CANCEL, CalendarUnavailable("down"), AnswerStatus.UPSTREAM_ERROR, "calendar_unavailable"),
    (Intent.RESCHEDULE, CalendarRejected(400, "Bad", "cannot cancel"), AnswerStatus.SLOT_UNAVAILABLE, None),
    (
        Intent.RESCHEDULE,
        CalendarRejected(403, "Forbidden", "no"),
        AnswerStatus.UPSTREAM_ERROR,
        "calendar_refused",
    ),
    (Intent.RESCHEDULE, SlotUnavailable("taken"), AnswerStatus.SLOT_UNAVAILABLE, None),
    (Intent.RESCHEDULE, CalendarUnavailable("down"), AnswerStatus.UPSTREAM_ERROR, "calendar_unavailable"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("intent", "error", "status", "reason"), REFUSALS)
async def test_a_refused_change_fails_honestly_and_frees_the_appointment(
    sessionmaker: Sm, intent: Intent, error: Exception, status: AnswerStatus, reason: str | None
) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    cal.change_errors = [error]  # type: ignore[list-item]
    if intent == Intent.CANCEL:
        outcome = await _cancel(sessionmaker, cal, tenant)
    else:
        outcome = await _move(sessionmaker, cal, tenant)
    assert outcome.status == status
    assert outcome.appointment is None
    if status == AnswerStatus.SLOT_UNAVAILABLE:
        assert outcome.alternatives  # offered around the wanted time
        assert outcome.reason is None
    else:
        assert (outcome.reason, outcome.alternatives) == (reason, ())
    after = await _appointment(sessionmaker, appointment_id)
    assert after.status == AppointmentStatus.BOOKED
    assert after.start_at.replace(tzinfo=UTC) == START
    assert (after.change_attempt_id, after.change_locked_until) == (None, None)
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.FAILED
    assert attempt.locked_until is None
    why = reason or ("not_bookable" if isinstance(error, CalendarRejected) else "slot_unavailable")
    assert attempt.answer_snapshot == {"status": status, "reason": why}
    assert attempt.guard_verdict == why
    # nothing happened upstream: an identical retry takes the failed attempt over and sends once more
    if intent == Intent.CANCEL:
        retry = await _cancel(sessionmaker, cal, tenant)
    else:
        retry = await _move(sessionmaker, cal, tenant)
    assert retry.status == (AnswerStatus.CANCELLED if intent == Intent.CANCEL else AnswerStatus.RESCHEDULED)
    assert len(cal.changes) == 2
    assert len(await _change_attempts(sessionmaker)) == 1


@pytest.mark.asyncio
async def test_slot_unavailable_offers_alternatives_around_the_target(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    cal.change_errors = [SlotUnavailable("taken")]
    outcome = await _move(sessionmaker, cal, tenant, START + timedelta(hours=2))
    # around the wished new time (never offering it again), not around the appointment's own start
    assert outcome.alternatives == (LATER, START + timedelta(hours=3))
    assert {event_type for event_type, _, _ in cal.slot_queries} == {2563193}
    # replayed from the failed attempt, alternatives recomputed around the target
    run = changes.Change(sessionmaker, cal, FAST, tenant)
    (attempt,) = await _change_attempts(sessionmaker)
    async with sessionmaker() as session:
        failed = await attempts.get(session, attempt.id)
    replay = await changes._replay(run, failed)
    assert (replay.status, replay.replayed) == (AnswerStatus.SLOT_UNAVAILABLE, True)
    assert replay.alternatives == outcome.alternatives


@pytest.mark.asyncio
async def test_alternatives_are_empty_when_the_calendar_is_down(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)

    async def down(*_: Any) -> list[datetime]:
        raise CalendarUnavailable("down")

    cal.change_errors = [SlotUnavailable("taken")]
    cal.find_slots = down  # type: ignore[method-assign]
    outcome = await _move(sessionmaker, cal, tenant)
    assert (outcome.status, outcome.alternatives) == (AnswerStatus.SLOT_UNAVAILABLE, ())


# --- reschedule ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reschedule_moves_the_appointment_to_the_new_booking(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    old_uid = (await _appointment(sessionmaker, appointment_id)).calcom_booking_uid
    outcome = await _move(sessionmaker, cal, tenant, start=START)
    assert cal.changes == [("reschedule", old_uid, LATER, changes.RESCHEDULE_REASON)]
    (new_uid,) = [uid for uid, b in cal.bookings.items() if b.is_live]
    assert outcome == outcomes.Outcome(
        AnswerStatus.RESCHEDULED,
        appointment=outcomes.AppointmentView(appointment_id, new_uid, LATER, "Haarschnitt"),
    )
    after = await _appointment(sessionmaker, appointment_id)
    assert (after.calcom_booking_uid, after.rescheduled_from_uid) == (new_uid, old_uid)
    assert after.start_at.replace(tzinfo=UTC) == LATER
    assert after.end_at.replace(tzinfo=UTC) == LATER + timedelta(minutes=30)
    assert after.status == AppointmentStatus.BOOKED
    assert (after.change_attempt_id, after.change_locked_until) == (None, None)
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.RECORDED
    assert attempt.calcom_booking_uid == new_uid
    assert attempt.target_start_at.replace(tzinfo=UTC) == LATER  # type: ignore[union-attr]
    assert attempt.idempotency_key.endswith(
        f"|appointment:{appointment_id}|reschedule|{LATER.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    assert attempt.fingerprint == changes.change_fingerprint(Intent.RESCHEDULE, appointment_id, LATER)
    assert attempt.request_snapshot == {
        "function": "reschedule_appointment",
        "phone": None,
        "start": START.isoformat(),
        "new_start": LATER.isoformat(),
    }
    assert attempt.answer_snapshot == {"status": "rescheduled", "calcom_booking_uid": new_uid}
    assert attempt.guard_verdict == "reschedule_rescheduled"
    # an identical retry replays the move; the appointment is found by its new start only
    again = await _move(sessionmaker, cal, tenant, start=START)
    assert again == replace(outcome, replayed=True)
    assert len(cal.changes) == 1


@pytest.mark.asyncio
async def test_reschedule_to_the_same_time_is_unchanged_without_an_attempt(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    outcome = await _move(sessionmaker, cal, tenant, START)
    assert (outcome.status, outcome.reason) == (AnswerStatus.RESCHEDULED, "unchanged")
    assert outcome.appointment is not None
    assert (outcome.appointment.id, outcome.appointment.service) == (appointment_id, "Haarschnitt")
    assert cal.changes == []
    assert await _change_attempts(sessionmaker) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("new_start", "reason"),
    [
        (datetime.now(UTC) + timedelta(minutes=30), "too_short_notice"),
        (datetime.now(UTC) + timedelta(days=20), "too_far_ahead"),
    ],
)
async def test_reschedule_outside_the_window_is_refused_without_an_attempt(
    sessionmaker: Sm, new_start: datetime, reason: str
) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Service).values(max_days_ahead=14, min_notice_minutes=120))
    outcome = await _move(sessionmaker, cal, tenant, new_start.replace(second=0, microsecond=0))
    assert (outcome.status, outcome.reason) == (AnswerStatus.INVALID_INPUT, reason)
    assert outcome.window == BookingWindow(14, 120)
    assert cal.changes == []
    assert await _change_attempts(sessionmaker) == []


@pytest.mark.asyncio
async def test_moved_booking_folds_in_the_external_stand_in_row(sessionmaker: Sm) -> None:
    """A webhook may have made a row for the new uid first; it is folded into the moved appointment."""
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    real_reschedule = cal.reschedule_booking
    stand_ins: list[int] = []

    async def reschedule_with_webhook(uid: str, new_start: datetime, reason: str | None = None) -> Any:
        new = await real_reschedule(uid, new_start, reason)
        async with sessionmaker() as session, session.begin():
            row = Appointment(
                company_id=tenant.company_id,
                calcom_booking_uid=new.uid,
                start_at=new.start,
                end_at=new.end,
                status=AppointmentStatus.BOOKED,
                source="external",
            )
            session.add(row)
            await session.flush()
            stand_ins.append(row.id)
        return new

    cal.reschedule_booking = reschedule_with_webhook  # type: ignore[method-assign]
    outcome = await _move(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.RESCHEDULED
    async with sessionmaker() as session:
        ids = list((await session.execute(select(Appointment.id).order_by(Appointment.id))).scalars())
    assert ids == [appointment_id]
    assert stand_ins


# --- a lost answer: resolved by looking the booking up --------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("intent", [Intent.CANCEL, Intent.RESCHEDULE])
async def test_a_lost_answer_after_the_change_is_found_by_lookup(sessionmaker: Sm, intent: Intent) -> None:
    cal = FakeCalendar(change_errors=[OutcomeUnknown("read timeout")], change_before_error=True)
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    if intent == Intent.CANCEL:
        outcome = await _cancel(sessionmaker, cal, tenant)
        assert outcome.status == AnswerStatus.CANCELLED
    else:
        outcome = await _move(sessionmaker, cal, tenant)
        assert outcome.status == AnswerStatus.RESCHEDULED
        assert outcome.appointment is not None
        assert outcome.appointment.start == LATER
    assert outcome.appointment is not None
    assert outcome.appointment.service == "Haarschnitt"
    assert len(cal.changes) == 1  # found, not sent again
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.RECORDED
    assert (await _appointment(sessionmaker, appointment_id)).change_attempt_id is None


@pytest.mark.asyncio
@pytest.mark.parametrize("intent", [Intent.CANCEL, Intent.RESCHEDULE])
async def test_a_lost_request_that_did_nothing_is_sent_once_more(sessionmaker: Sm, intent: Intent) -> None:
    cal = FakeCalendar(change_errors=[OutcomeUnknown("reset")])
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    if intent == Intent.CANCEL:
        outcome = await _cancel(sessionmaker, cal, tenant)
        assert outcome.status == AnswerStatus.CANCELLED
    else:
        outcome = await _move(sessionmaker, cal, tenant)
        assert outcome.status == AnswerStatus.RESCHEDULED
    assert len(cal.changes) == 2
    (attempt,) = await _change_attempts(sessionmaker)
    assert (attempt.state, attempt.tries) == (AttemptState.RECORDED, 2)


@pytest.mark.asyncio
async def test_a_second_lost_request_answers_in_progress_and_leaves_it_open(sessionmaker: Sm) -> None:
    cal = FakeCalendar(change_errors=[OutcomeUnknown("reset"), OutcomeUnknown("reset")])
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "unconfirmed")
    assert len(cal.changes) == 2  # one re-send, never a third
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.UNKNOWN
    assert (await _appointment(sessionmaker, appointment_id)).change_attempt_id == attempt.id


@pytest.mark.asyncio
async def test_a_failing_lookup_answers_in_progress(sessionmaker: Sm) -> None:
    cal = FakeCalendar(change_errors=[OutcomeUnknown("reset")])
    tenant, _, _ = await _setup(sessionmaker, cal, START)

    async def down(uid: str) -> None:
        raise CalendarUnavailable("down")

    cal.get_booking = down  # type: ignore[method-assign,assignment]
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "unconfirmed")
    assert len(cal.changes) == 1
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.UNKNOWN


# --- look_up_change, alone -------------------------------------------------------------------------------


async def _attempt_for(sm: Sm, intent: Intent, cal: FakeCalendar) -> tuple[attempts.Attempt, int]:
    """A sent change attempt on a freshly booked appointment (the request itself is never made)."""
    _tenant, _, (appointment_id,) = await _setup(sm, cal, START)
    appointment = await _appointment(sm, appointment_id)
    target = LATER if intent == Intent.RESCHEDULE else None
    owned = changes.Owned(appointment, "Haarschnitt", BookingWindow())
    request = changes.ChangeRequest(intent, None, None, target)
    now = FAST.clock()
    async with sm() as session, session.begin():
        _, attempt = await attempts.claim(
            session, changes._attempt_values(CallContext("call_change"), owned, request), now, 30
        )
        await attempts.move(session, attempt.id, AttemptState.CLAIMED, AttemptState.SENT, now)
        attempt = await attempts.get(session, attempt.id)
    return attempt, appointment_id


LOOKUPS = [
    # (intent, what Cal.com did to the booking, applies: the answer it gives, or None)
    (Intent.CANCEL, "nothing", None),
    (Intent.CANCEL, "cancelled", AnswerStatus.CANCELLED),
    (Intent.CANCEL, "deleted", AnswerStatus.CANCELLED),
    (Intent.RESCHEDULE, "nothing", None),
    (Intent.RESCHEDULE, "moved", AnswerStatus.RESCHEDULED),
    (Intent.RESCHEDULE, "cancelled", AnswerStatus.NOT_FOUND),
    (Intent.RESCHEDULE, "deleted", AnswerStatus.NOT_FOUND),
    (Intent.RESCHEDULE, "moved_new_gone", AnswerStatus.NOT_FOUND),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("intent", "upstream", "answer"), LOOKUPS)
async def test_look_up_change(
    sessionmaker: Sm, intent: Intent, upstream: str, answer: AnswerStatus | None
) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, intent, cal)
    uid = attempt.source_booking_uid or ""
    if upstream == "cancelled":
        await cal.cancel_booking(uid, "elsewhere")
    elif upstream == "deleted":
        del cal.bookings[uid]
    elif upstream.startswith("moved"):
        new = await cal.reschedule_booking(uid, LATER)
        if upstream == "moved_new_gone":
            del cal.bookings[new.uid]
    finding = await changes.look_up_change(cal, attempt)
    if answer is None:
        assert finding.done is None
        return
    assert finding.done is not None
    outcome = await finding.done(sessionmaker, attempt, FAST.clock(), "Haarschnitt")
    assert outcome.status == answer
    after = await _appointment(sessionmaker, appointment_id)
    async with sessionmaker() as session:
        settled = await attempts.get(session, attempt.id)
    if answer == AnswerStatus.RESCHEDULED:
        assert after.status == AppointmentStatus.BOOKED
        assert after.start_at.replace(tzinfo=UTC) == LATER
        assert settled.state == AttemptState.RECORDED
    elif answer == AnswerStatus.CANCELLED:
        assert after.status == AppointmentStatus.CANCELLED
        assert settled.state == AttemptState.RECORDED
        assert outcome.appointment is not None
        assert outcome.appointment.service == "Haarschnitt"
    else:
        assert outcome.reason == "cancelled_meanwhile"
        assert after.status == AppointmentStatus.CANCELLED
        assert (settled.state, settled.answer_snapshot) == (
            AttemptState.FAILED,
            {"status": "not_found", "reason": "cancelled_meanwhile"},
        )
        assert settled.guard_verdict == "reschedule_not_found"
    assert settled.locked_until is None
    assert (after.change_attempt_id, after.change_locked_until) == (None, None)


@pytest.mark.asyncio
async def test_settling_twice_is_a_no_op(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, _appointment_id = await _attempt_for(sessionmaker, Intent.CANCEL, cal)
    await changes.apply_cancelled(sessionmaker, attempt, FAST.clock())
    moved = await changes.settle_failed(
        sessionmaker, attempt, FAST.clock(), {"status": AnswerStatus.UPSTREAM_ERROR}
    )
    assert moved is False
    async with sessionmaker() as session:
        settled = await attempts.get(session, attempt.id)
    assert (settled.state, settled.answer_snapshot) == (AttemptState.RECORDED, {"status": "cancelled"})


@pytest.mark.asyncio
async def test_settle_failed_frees_only_its_own_hold(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.CANCEL, cal)
    until = FAST.clock() + timedelta(minutes=1)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(change_attempt_id=attempt.id + 1000, change_locked_until=until)
        )
    moved = await changes.settle_failed(
        sessionmaker, attempt, FAST.clock(), {"status": AnswerStatus.UPSTREAM_ERROR}
    )
    assert moved is True
    held = await _appointment(sessionmaker, appointment_id)
    assert held.change_attempt_id == attempt.id + 1000
    async with sessionmaker() as session:
        failed = await attempts.get(session, attempt.id)
    assert (failed.state, failed.guard_verdict, failed.locked_until) == (
        AttemptState.FAILED,
        "upstream_error",  # no reason given: the status names it
        None,
    )
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment).where(Appointment.id == appointment_id).values(change_attempt_id=attempt.id)
        )
    # a claimed (never sent) attempt fails too, and frees its own hold
    async with sessionmaker() as session, session.begin():
        await attempts.move(session, attempt.id, AttemptState.FAILED, AttemptState.CLAIMED, FAST.clock())
    claimed = replace(attempt, state=AttemptState.CLAIMED)
    assert await changes.settle_failed(sessionmaker, claimed, FAST.clock(), {"status": "x", "reason": "y"})
    freed = await _appointment(sessionmaker, appointment_id)
    assert (freed.change_attempt_id, freed.change_locked_until) == (None, None)


# --- one change at a time: the hold --------------------------------------------------------------------


async def _hold_by_another(sm: Sm, appointment_id: int, *, expired: bool = False) -> None:
    until = FAST.clock() + (timedelta(seconds=-1) if expired else timedelta(minutes=1))
    async with sm() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(change_attempt_id=999_999, change_locked_until=until)
        )


@pytest.mark.asyncio
async def test_a_live_hold_of_another_change_answers_in_progress_without_sending(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    await _hold_by_another(sessionmaker, appointment_id)
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "another_change_in_flight")
    assert cal.changes == []
    (attempt,) = await _change_attempts(sessionmaker)
    assert attempt.state == AttemptState.CLAIMED  # left for a retry or the reconciler


@pytest.mark.asyncio
async def test_an_expired_hold_is_taken_over(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    await _hold_by_another(sessionmaker, appointment_id, expired=True)
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.CANCELLED
    assert len(cal.changes) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("what", ["cancelled", "moved", "deleted"])
async def test_a_change_that_lost_the_race_says_what_the_winner_did(sessionmaker: Sm, what: str) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    appointment = await _appointment(sessionmaker, appointment_id)
    owned = changes.Owned(appointment, "Haarschnitt", BookingWindow())
    request = changes.ChangeRequest(Intent.CANCEL)
    async with sessionmaker() as session, session.begin():
        _, attempt = await attempts.claim(
            session, changes._attempt_values(CallContext("call_change"), owned, request), FAST.clock(), 30
        )
    async with sessionmaker() as session, session.begin():
        if what == "cancelled":
            values: dict[str, Any] = {"status": AppointmentStatus.CANCELLED}
        else:
            values = {"calcom_booking_uid": "moved_uid", "start_at": LATER}
        if what == "deleted":
            await session.execute(delete(Appointment).where(Appointment.id == appointment_id))
        else:
            await session.execute(
                update(Appointment).where(Appointment.id == appointment_id).values(**values)
            )
    run = changes.Change(sessionmaker, cal, FAST, tenant, service="Haarschnitt")
    outcome = await changes._machine(run).drive(attempt)
    status = AnswerStatus.RESCHEDULED if what == "moved" else AnswerStatus.CANCELLED
    assert (outcome.status, outcome.reason) == (status, "changed_by_another_request")
    if what == "deleted":
        assert outcome.appointment is None
    else:
        assert outcome.appointment is not None
        assert (outcome.appointment.id, outcome.appointment.service) == (appointment_id, "Haarschnitt")
    assert cal.changes == []
    async with sessionmaker() as session:
        settled = await attempts.get(session, attempt.id)
    assert settled.state == AttemptState.FAILED
    assert settled.guard_verdict == "yielded_to_another_change"
    assert settled.locked_until is None
    assert settled.answer_snapshot == {"status": status, "reason": "changed_by_another_request"}


@pytest.mark.asyncio
async def test_a_concurrent_identical_change_in_flight_answers_in_progress(sessionmaker: Sm) -> None:
    """A retry while the first request's attempt is held (alive) waits, then answers in progress."""
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    appointment = await _appointment(sessionmaker, appointment_id)
    owned = changes.Owned(appointment, "Haarschnitt", BookingWindow())
    request = changes.ChangeRequest(Intent.CANCEL)
    async with sessionmaker() as session, session.begin():
        await attempts.claim(
            session, changes._attempt_values(CallContext("call_change"), owned, request), FAST.clock(), 30
        )
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "change_in_flight")
    assert cal.changes == []


@pytest.mark.asyncio
async def test_a_retry_takes_over_a_dead_holder_and_finishes(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    appointment = await _appointment(sessionmaker, appointment_id)
    owned = changes.Owned(appointment, "Haarschnitt", BookingWindow())
    request = changes.ChangeRequest(Intent.CANCEL)
    async with sessionmaker() as session, session.begin():
        await attempts.claim(
            session, changes._attempt_values(CallContext("call_change"), owned, request), FAST.clock(), -1
        )
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.CANCELLED
    assert outcome.appointment is not None
    assert outcome.appointment.service == "Haarschnitt"  # the joined run knows the service's name
    assert len(cal.changes) == 1


@pytest.mark.asyncio
async def test_the_hold_is_taken_with_the_lock_while_the_change_is_sent(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    seen: list[tuple[Any, ...]] = []
    real_cancel = cal.cancel_booking

    async def spy(uid: str, reason: str) -> Any:
        held = await _appointment(sessionmaker, appointment_id)
        (attempt,) = await _change_attempts(sessionmaker)
        seen.append((held.change_attempt_id, held.change_locked_until, attempt.id, attempt.state))
        seen.append((attempt.locked_until, attempt.first_sent_at, attempt.tries))
        return await real_cancel(uid, reason)

    cal.cancel_booking = spy  # type: ignore[method-assign]
    before = FAST.clock().replace(tzinfo=None)
    await _cancel(sessionmaker, cal, tenant)
    (held_by, held_until, attempt_id, state), (locked_until, first_sent, tries) = seen
    assert (held_by, state, tries) == (attempt_id, AttemptState.SENT, 1)
    assert held_until.replace(tzinfo=None) >= before + timedelta(seconds=29)
    assert locked_until.replace(tzinfo=None) >= before + timedelta(seconds=29)
    assert first_sent.replace(tzinfo=None) >= before


@pytest.mark.asyncio
async def test_no_change_attempt_is_made_for_an_appointment_not_owned(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    await _move(sessionmaker, cal, tenant, caller=OTHER_CALLER)
    async with sessionmaker() as session:
        count = (await session.execute(select(func.count()).select_from(BookingAttempt))).scalar_one()
    assert count == 1  # the booking's own attempt


# --- pinned details (mutation testing, docs/TESTING.md) ------------------------------------------------


@pytest.mark.asyncio
async def test_the_phone_argument_narrows_a_reschedule_too(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    outcome = await _move(sessionmaker, cal, tenant, phone=OTHER_CALLER)
    assert (outcome.status, outcome.reason) == (AnswerStatus.NOT_FOUND, "no_appointment")
    assert cal.changes == []


@pytest.mark.asyncio
async def test_already_cancelled_upstream_answers_with_the_service(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    cal.change_errors = [CalendarRejected(400, "BadRequestException", "Booking is already CANCELLED")]
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.CANCELLED
    assert outcome.appointment is not None
    assert outcome.appointment.service == "Haarschnitt"


@pytest.mark.asyncio
async def test_other_refusals_are_logged_as_warnings_with_calcoms_message(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    detail = "x" * 400
    cal.change_errors = [CalendarRejected(403, "ForbiddenException", detail)]
    with capture_logs() as logs:
        await _move(sessionmaker, cal, tenant)
    (refused,) = [e for e in logs if e["event"] == "change.refused"]
    assert refused == {
        "event": "change.refused",
        "log_level": "warning",
        "intent": Intent.RESCHEDULE,
        "status": 403,
        "code": "ForbiddenException",
        "detail": "x" * 300,
    }


@pytest.mark.asyncio
async def test_a_hanging_lookup_is_cut_off_by_the_resolve_budget(sessionmaker: Sm) -> None:
    cal = FakeCalendar(change_errors=[OutcomeUnknown("reset")])
    tenant, _, _ = await _setup(sessionmaker, cal, START)

    async def hang(uid: str) -> None:
        await asyncio.sleep(30)

    cal.get_booking = hang  # type: ignore[method-assign,assignment]
    policy = replace(FAST, resolve_budget_seconds=0.2)
    outcome = await asyncio.wait_for(_cancel(sessionmaker, cal, tenant, policy=policy), 10)
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "unconfirmed")


@pytest.mark.asyncio
async def test_a_replayed_change_names_its_attempts_service(sessionmaker: Sm) -> None:
    """A retry that no longer finds the appointment (it is cancelled) names the service from the attempt."""
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    await _cancel(sessionmaker, cal, tenant)
    again = await _cancel(sessionmaker, cal, tenant)
    assert again.appointment is not None
    assert (again.replayed, again.appointment.service) == (True, "Haarschnitt")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(BookingAttempt).where(BookingAttempt.intent == Intent.CANCEL).values(service_id=None)
        )
    without = await _cancel(sessionmaker, cal, tenant)
    assert without.appointment is not None
    assert (without.replayed, without.appointment.service) == (True, "")


def _run(sm: Sm, cal: FakeCalendar, tenant: Tenant) -> changes.Change:
    return changes.Change(sm, cal, FAST, tenant, service="Haarschnitt")


@pytest.mark.asyncio
async def test_replay_of_an_attempt_without_an_answer_or_appointment(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, _ = await _attempt_for(sessionmaker, Intent.CANCEL, cal)
    tenant = Tenant(
        attempt.company_id, "salon-mitte", "Salon Mitte", "Europe/Berlin", "x.example", "de", "DE"
    )
    bare = replace(attempt, answer_snapshot=None, appointment_id=None)
    replay = await changes._replay(_run(sessionmaker, cal, tenant), bare)
    assert replay == outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, replayed=True)
    said = replace(attempt, answer_snapshot={"status": "in_progress", "reason": "another_change_in_flight"})
    replay = await changes._replay(_run(sessionmaker, cal, tenant), said)
    assert (replay.status, replay.reason, replay.replayed) == (
        AnswerStatus.IN_PROGRESS,
        "another_change_in_flight",
        True,
    )
    assert replay.appointment is not None
    assert replay.appointment.service == "Haarschnitt"


LATE = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)  # far from the wall clock, so defaults cannot pass for it


async def _moved_to(cal: FakeCalendar, uid: str) -> Any:
    return await cal.reschedule_booking(uid, LATER)


@pytest.mark.asyncio
@pytest.mark.parametrize("apply", ["cancelled", "moved", "gone"])
async def test_applying_writes_the_times_it_was_given_and_frees_the_hold(
    sessionmaker: Sm, apply: str
) -> None:
    cal = FakeCalendar()
    intent = Intent.CANCEL if apply == "cancelled" else Intent.RESCHEDULE
    attempt, appointment_id = await _attempt_for(sessionmaker, intent, cal)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(change_attempt_id=attempt.id, change_locked_until=LATE)
        )
    if apply == "cancelled":
        outcome = await changes.apply_cancelled(sessionmaker, attempt, LATE)
    elif apply == "moved":
        outcome = await changes.apply_moved(
            sessionmaker, attempt, await _moved_to(cal, attempt.source_booking_uid or ""), LATE
        )
    else:
        outcome = await changes.apply_gone(sessionmaker, attempt, LATE)
    after = await _appointment(sessionmaker, appointment_id)
    assert (after.updated_at, after.synced_at) == (LATE, LATE)
    assert (after.change_attempt_id, after.change_locked_until) == (None, None)
    if apply != "gone":
        assert outcome.appointment is not None
        assert outcome.appointment.service == ""  # no service name given
        assert after.status == AppointmentStatus.BOOKED if apply == "moved" else AppointmentStatus.CANCELLED


@pytest.mark.asyncio
async def test_a_move_applied_to_an_appointment_already_at_the_new_uid_completes_it(sessionmaker: Sm) -> None:
    """A webhook may have put the new uid on our row (and marked it cancelled) before the answer came."""
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(
                calcom_booking_uid=new.uid,
                status=AppointmentStatus.CANCELLED,
                change_attempt_id=attempt.id,
                change_locked_until=LATE,
            )
        )
    outcome = await changes.apply_moved(sessionmaker, attempt, new, LATE)
    assert outcome.status == AnswerStatus.RESCHEDULED
    after = await _appointment(sessionmaker, appointment_id)
    assert (after.calcom_booking_uid, after.status, after.change_attempt_id) == (
        new.uid,
        AppointmentStatus.BOOKED,
        None,
    )
    assert after.start_at.replace(tzinfo=UTC) == LATER


@pytest.mark.asyncio
async def test_a_move_never_overwrites_an_appointment_that_moved_on_meanwhile(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment).where(Appointment.id == appointment_id).values(calcom_booking_uid="third_uid")
        )
    await changes.apply_moved(sessionmaker, attempt, new, LATE)
    after = await _appointment(sessionmaker, appointment_id)
    assert (after.calcom_booking_uid, after.start_at.replace(tzinfo=UTC)) == ("third_uid", START)


async def _row(sm: Sm, uid: str, *, call_id: str | None, source: str) -> int:
    async with sm() as session, session.begin():
        row = Appointment(
            call_id=call_id,
            calcom_booking_uid=uid,
            start_at=LATER,
            status=AppointmentStatus.BOOKED,
            source=source,
        )
        session.add(row)
        await session.flush()
        return row.id


@pytest.mark.asyncio
async def test_only_the_stand_in_for_the_new_uid_is_folded_in(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    stand_in = await _row(sessionmaker, new.uid, call_id=None, source="external")
    unrelated = await _row(sessionmaker, "someone_elses_uid", call_id=None, source="external")
    await changes.apply_moved(sessionmaker, attempt, new, LATE)
    async with sessionmaker() as session:
        ids = set((await session.execute(select(Appointment.id))).scalars())
    assert ids == {appointment_id, unrelated}
    assert stand_in not in ids


@pytest.mark.asyncio
@pytest.mark.parametrize(("call_id", "source"), [("call_x", "external"), (None, "voicebook")])
async def test_a_row_that_is_not_a_stand_in_is_never_deleted(
    sessionmaker: Sm, call_id: str | None, source: str
) -> None:
    cal = FakeCalendar()
    attempt, _ = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    keeper = await _row(sessionmaker, new.uid, call_id=call_id, source=source)
    with pytest.raises(IntegrityError):  # the uid is taken: the move cannot be folded, and nothing is lost
        await changes.apply_moved(sessionmaker, attempt, new, LATE)
    assert (await _appointment(sessionmaker, keeper)).calcom_booking_uid == new.uid


@pytest.mark.asyncio
async def test_re_applying_a_move_to_a_call_less_appointment_keeps_it(sessionmaker: Sm) -> None:
    """An appointment made outside any call (owned through the caller's number) is moved, never deleted."""
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(call_id=None, source="external")
        )
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    await changes.apply_moved(sessionmaker, attempt, new, LATE)
    await changes.apply_moved(sessionmaker, attempt, new, LATE)  # e.g. the reconciler after the flow
    after = await _appointment(sessionmaker, appointment_id)
    assert after.calcom_booking_uid == new.uid


@pytest.mark.asyncio
async def test_applying_to_a_vanished_appointment_answers_without_one(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    new = await _moved_to(cal, attempt.source_booking_uid or "")
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Appointment).where(Appointment.id == appointment_id))
    outcome = await changes.apply_moved(sessionmaker, attempt, new, LATE)
    assert (outcome.status, outcome.appointment) == (AnswerStatus.RESCHEDULED, None)


@pytest.mark.asyncio
async def test_a_failed_change_keeps_at_most_64_characters_of_its_reason(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, _ = await _attempt_for(sessionmaker, Intent.CANCEL, cal)
    assert await changes.settle_failed(sessionmaker, attempt, LATE, {"status": "x", "reason": "r" * 100})
    async with sessionmaker() as session:
        failed = await attempts.get(session, attempt.id)
    assert failed.guard_verdict == "r" * 64


@pytest.mark.asyncio
async def test_an_appointment_booked_in_this_call_is_owned_even_without_its_customer_row(
    sessionmaker: Sm,
) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment).where(Appointment.id == appointment_id).values(customer_id=None)
        )
    outcome = await _cancel(sessionmaker, cal, tenant, call_id="call_book")
    assert outcome.status == AnswerStatus.CANCELLED


@pytest.mark.asyncio
async def test_the_phone_argument_may_name_the_customers_number(sessionmaker: Sm) -> None:
    """Booked from CALLER with another phone given: naming the customer's own number still finds it."""
    cal = FakeCalendar(slots=[START])
    tenant, service = await make_tenant(sessionmaker)
    await flow.book(
        sessionmaker,
        cal,
        BookingPolicy(),
        tenant,
        CallContext("call_book", CALLER, SALON),
        flow.BookArgs(service=service, start=START, name="Jane", phone="+491705555555"),
    )
    for phone in (CALLER, "+491705555555"):
        async with sessionmaker() as session:
            found = await changes.owned_appointments(
                session, tenant, CallContext("call_change", CALLER, SALON), phone, FAST.clock()
            )
        assert len(found) == 1, phone


@pytest.mark.asyncio
async def test_an_external_appointment_without_details_gets_placeholders(sessionmaker: Sm) -> None:
    """A webhook-made appointment (no call, event type, name or e-mail) owned through the caller's number."""
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(
                call_id=None, source="external", event_type_id=None, attendee_name=None, attendee_email=None
            )
        )
    outcome = await _cancel(sessionmaker, cal, tenant)
    assert outcome.status == AnswerStatus.CANCELLED
    (attempt,) = await _change_attempts(sessionmaker)
    assert (attempt.event_type_id, attempt.attendee_name, attempt.attendee_email) == (0, "", "")


@pytest.mark.asyncio
async def test_a_change_records_the_call_with_its_company(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    await _cancel(sessionmaker, cal, tenant, call_id="call_new")
    async with sessionmaker() as session:
        call = (await session.execute(select(Call).where(Call.retell_call_id == "call_new"))).scalar_one()
    assert call.company_id == tenant.company_id


@pytest.mark.asyncio
async def test_a_change_waits_for_a_holder_that_lets_go(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    await _hold_by_another(sessionmaker, appointment_id)

    async def release() -> None:
        await asyncio.sleep(0.1)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Appointment)
                .where(Appointment.id == appointment_id)
                .values(change_attempt_id=None, change_locked_until=None)
            )

    task = asyncio.create_task(release())
    outcome = await _cancel(sessionmaker, cal, tenant, policy=replace(FAST, wait_in_flight_seconds=3))
    await task
    assert outcome.status == AnswerStatus.CANCELLED


@pytest.mark.asyncio
async def test_a_hold_ending_exactly_now_still_holds(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, (appointment_id,) = await _setup(sessionmaker, cal, START)
    now = datetime.now(UTC).replace(microsecond=0)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(change_attempt_id=999_999, change_locked_until=now)
        )
    outcome = await _cancel(sessionmaker, cal, tenant, policy=replace(FAST, clock=lambda: now))
    assert (outcome.status, outcome.reason) == (AnswerStatus.IN_PROGRESS, "another_change_in_flight")


@pytest.mark.asyncio
async def test_sending_renews_the_attempts_lock_from_the_send_time(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, START)
    base = datetime.now(UTC).replace(microsecond=0)
    ticks = iter(range(1000))
    policy = replace(FAST, clock=lambda: base + timedelta(seconds=10 * next(ticks)))
    seen: list[tuple[Any, Any]] = []
    real_cancel = cal.cancel_booking

    async def spy(uid: str, reason: str) -> Any:
        (attempt,) = await _change_attempts(sessionmaker)
        seen.append((attempt.locked_until, attempt.first_sent_at))
        return await real_cancel(uid, reason)

    cal.cancel_booking = spy  # type: ignore[method-assign]
    await _cancel(sessionmaker, cal, tenant, policy=policy)
    ((locked_until, first_sent_at),) = seen
    assert first_sent_at > base
    assert locked_until == first_sent_at + timedelta(seconds=30)


@pytest.mark.asyncio
async def test_an_attempt_moved_on_before_sending_is_reloaded_not_sent(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.CANCEL, cal)  # already sent
    tenant = Tenant(
        attempt.company_id, "salon-mitte", "Salon Mitte", "Europe/Berlin", "x.example", "de", "DE"
    )
    stale = replace(attempt, state=AttemptState.CLAIMED)
    result = await changes._hold_and_send(_run(sessionmaker, cal, tenant), stale)
    assert isinstance(result, attempts.Attempt)
    assert (result.id, result.state) == (attempt.id, AttemptState.SENT)
    assert cal.changes == []
    assert (await _appointment(sessionmaker, appointment_id)).change_attempt_id == attempt.id


@pytest.mark.asyncio
async def test_a_reschedule_attempt_without_a_target_is_a_bug(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, _ = await _attempt_for(sessionmaker, Intent.RESCHEDULE, cal)
    tenant = Tenant(
        attempt.company_id, "salon-mitte", "Salon Mitte", "Europe/Berlin", "x.example", "de", "DE"
    )
    async with sessionmaker() as session, session.begin():
        await attempts.move(session, attempt.id, AttemptState.SENT, AttemptState.CLAIMED, FAST.clock())
    broken = replace(attempt, state=AttemptState.CLAIMED, target_start_at=None)
    with pytest.raises(InvariantViolated, match=f"^reschedule attempt {attempt.public_id} without a target$"):
        await changes._hold_and_send(_run(sessionmaker, cal, tenant), broken)


@pytest.mark.asyncio
async def test_the_booking_window_counts_days_in_the_companys_zone(sessionmaker: Sm) -> None:
    """22:30 UTC is 23:30 in Berlin: 25 hours later is the day after tomorrow there, but tomorrow in UTC."""
    now = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC).replace(
        hour=22, minute=30
    )
    cal = FakeCalendar()
    tenant, _, _ = await _setup(sessionmaker, cal, now + timedelta(hours=3))
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Service).values(max_days_ahead=1))
    policy = replace(FAST, clock=lambda: now)
    outcome = await _move(sessionmaker, cal, tenant, now + timedelta(hours=25), policy=policy)
    assert (outcome.status, outcome.reason) == (AnswerStatus.INVALID_INPUT, "too_far_ahead")
    inside = await _move(sessionmaker, cal, tenant, now + timedelta(hours=24), policy=policy)
    assert inside.status == AnswerStatus.RESCHEDULED


@pytest.mark.asyncio
async def test_cancelling_a_vanished_appointment_answers_without_one(sessionmaker: Sm) -> None:
    cal = FakeCalendar()
    attempt, appointment_id = await _attempt_for(sessionmaker, Intent.CANCEL, cal)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Appointment).where(Appointment.id == appointment_id))
    outcome = await changes.apply_cancelled(sessionmaker, attempt, LATE)
    assert (outcome.status, outcome.appointment) == (AnswerStatus.CANCELLED, None)
