"""The booking flow against FakeCalendar, on every database backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant
from tests.fakes import FakeCalendar

from voicebook.booking import flow, outcomes
from voicebook.booking.errors import CalendarUnavailable, OutcomeUnknown
from voicebook.booking.policy import BookingPolicy, GuardPolicy
from voicebook.booking.tenancy import CallContext
from voicebook.booking.types import Attendee, CalendarBooking
from voicebook.db.models import Appointment, BookingAttempt, GuardEvent

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
Sm = async_sessionmaker[AsyncSession]


async def _count(sm: Sm, model: type, *where: object) -> int:
    async with sm() as session:
        return int(
            (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


async def _phrases(sm: Sm) -> list[str]:
    async with sm() as session:
        return list((await session.execute(select(GuardEvent.verdict).order_by(GuardEvent.id))).scalars())


async def _layers(sm: Sm, verdict: str) -> list[str]:
    async with sm() as session:
        rows = await session.execute(select(GuardEvent.layer).where(GuardEvent.verdict == verdict))
        return [r[0] for r in rows]


async def _book(
    sm: Sm,
    cal: FakeCalendar,
    call_id: str = "call_687",
    name: str = "Jörg Müller",
    policy: BookingPolicy | None = None,
    **kw: object,
) -> outcomes.Outcome:
    tenant, service = kw.pop("tenant_service", None) or await make_tenant(sm)  # type: ignore[misc]
    args = flow.BookArgs(service=service, start=START, name=name, phone="+491701234567")
    return await flow.book(
        sm,
        cal,
        policy or BookingPolicy(),
        tenant,
        CallContext(call_id, "+491701234567", "+49301234567"),
        args,
    )


def foreign(
    start: datetime,
    *,
    created: datetime,
    metadata: dict[str, str] | None = None,
    email: str = "booking+call_687@salon-mitte.example",
) -> CalendarBooking:
    return CalendarBooking(
        uid="8Fxv4pCqnb1Jva1w9wn5wX",
        id=7,
        status="accepted",
        start=start,
        end=start + timedelta(minutes=30),
        event_type_id=2563193,
        created_at=created,
        attendees=(Attendee("Erste Anruferin", email),),
        metadata=metadata or {},
    )


@pytest.mark.asyncio
class TestBook:
    async def test_books_once_and_records_one_appointment(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START])
        outcome = await _book(sessionmaker, cal)
        assert outcome.status == "booked"
        assert outcome.appointment is not None
        assert len(cal.requests) == 1
        sent = cal.requests[0]
        assert sent.attendee.email == "booking+call_687@salon-mitte.example"
        assert sent.metadata["call_id"] == "call_687"
        assert await _count(sessionmaker, Appointment) == 1

    async def test_retry_replays_saved_answer_without_second_request(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START])
        ts = await make_tenant(sessionmaker)
        first = await _book(sessionmaker, cal, tenant_service=ts)
        second = await _book(sessionmaker, cal, tenant_service=ts)
        assert second.status == "booked"
        assert second.replayed
        assert second.appointment == first.appointment
        assert len(cal.requests) == 1

    async def test_same_key_with_other_name_is_refused(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START])
        ts = await make_tenant(sessionmaker)
        await _book(sessionmaker, cal, tenant_service=ts)
        other = await _book(sessionmaker, cal, name="Someone Else", tenant_service=ts)
        assert other.status == "invalid_input"
        assert other.reason == "attempt_conflict"
        assert len(cal.requests) == 1

    async def test_stale_booking_is_rejected(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(
            slots=[START], answer_with=foreign(START, created=datetime.now(UTC) - timedelta(minutes=35))
        )
        outcome = await _book(sessionmaker, cal)
        assert outcome.status == "rejected_duplicate"
        assert "STALE BOOKING DETECTED" in await _phrases(sessionmaker)
        assert await _count(sessionmaker, Appointment) == 0

    async def test_booking_with_another_calls_id_is_rejected(self, sessionmaker: Sm) -> None:
        booking = foreign(
            START, created=datetime.now(UTC), metadata={"call_id": "call_686", "attempt_id": "x"}
        )
        outcome = await _book(sessionmaker, FakeCalendar(slots=[START], answer_with=booking))
        assert outcome.status == "rejected_duplicate"
        assert "CALL ID MISMATCH" in await _phrases(sessionmaker)
        assert await _count(sessionmaker, Appointment) == 0

    async def test_uid_recorded_for_another_call_is_never_handed_over(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        booking = foreign(START, created=datetime.now(UTC))
        async with sessionmaker() as session, session.begin():
            session.add(
                Appointment(
                    company_id=ts[0].company_id,
                    call_id="call_686",
                    calcom_booking_uid=booking.uid,
                    start_at=START,
                    status="booked",
                )
            )
        outcome = await _book(
            sessionmaker, FakeCalendar(slots=[START], answer_with=booking), tenant_service=ts
        )
        assert outcome.status == "rejected_duplicate"
        assert "DUPLICATE BOOKING ID IN DATABASE" in await _phrases(sessionmaker)
        assert await _layers(sessionmaker, "DUPLICATE BOOKING ID IN DATABASE") == ["layer3"]
        assert await _count(sessionmaker, Appointment, Appointment.calcom_booking_uid == booking.uid) == 1

    async def test_timeout_after_commit_resolves_to_our_booking(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(
            slots=[START], create_errors=[OutcomeUnknown("read timeout")], store_before_error=True
        )
        outcome = await _book(sessionmaker, cal)
        assert outcome.status == "booked"
        assert len(cal.bookings) == 1
        assert outcome.appointment is not None
        assert outcome.appointment.calcom_booking_uid in cal.bookings

    async def test_timeout_before_commit_creates_once_more_after_lookup(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START], create_errors=[OutcomeUnknown("read timeout")])
        outcome = await _book(sessionmaker, cal)
        assert outcome.status == "booked"
        assert len(cal.requests) == 2
        assert len(cal.bookings) == 1

    async def test_unresolvable_outcome_answers_in_progress(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(
            slots=[START],
            create_errors=[OutcomeUnknown("reset")],
            store_before_error=True,
            lookup_error=CalendarUnavailable("down"),
        )
        outcome = await _book(sessionmaker, cal)
        assert outcome.status == "in_progress"
        async with sessionmaker() as session:
            assert (await session.execute(select(BookingAttempt.state))).scalar_one() == "unknown"
        assert await _count(sessionmaker, Appointment) == 0

    async def test_retry_after_a_dead_holder_recreates_when_the_lookup_finds_nothing(
        self, sessionmaker: Sm
    ) -> None:
        cal = FakeCalendar(
            slots=[START], create_errors=[OutcomeUnknown("reset")], lookup_error=CalendarUnavailable("down")
        )
        ts = await make_tenant(sessionmaker)
        assert (await _book(sessionmaker, cal, tenant_service=ts)).status == "in_progress"
        async with sessionmaker() as session, session.begin():  # the first holder is long gone
            await session.execute(
                update(BookingAttempt).values(locked_until=datetime.now(UTC) - timedelta(minutes=1))
            )
        cal.lookup_error = None
        retried = await _book(sessionmaker, cal, tenant_service=ts)
        assert retried.status == "booked"
        assert len(cal.requests) == 2
        assert len(cal.bookings) == 1
        assert await _count(sessionmaker, Appointment) == 1

    async def test_slot_taken_offers_alternatives(self, sessionmaker: Sm) -> None:
        later = START + timedelta(hours=1)
        cal = FakeCalendar(slots=[START, later])
        ts = await make_tenant(sessionmaker)
        await _book(sessionmaker, cal, call_id="call_1", tenant_service=ts)
        outcome = await _book(sessionmaker, cal, call_id="call_2", tenant_service=ts)
        assert outcome.status == "slot_unavailable"
        assert outcome.alternatives == (later,)

    async def test_fifty_concurrent_retries_make_one_booking(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START])
        ts = await make_tenant(sessionmaker)
        results = await asyncio.gather(*[_book(sessionmaker, cal, tenant_service=ts) for _ in range(50)])
        assert len(cal.requests) == 1
        assert {r.status for r in results} <= {"booked", "in_progress"}
        uids = {r.appointment.calcom_booking_uid for r in results if r.appointment}
        assert len(uids) == 1
        assert await _count(sessionmaker, Appointment) == 1

    async def test_layer4_holds_with_guards_disabled(self, sessionmaker: Sm) -> None:
        booking = foreign(START, created=datetime.now(UTC))
        cal = FakeCalendar(slots=[START], answer_with=booking)
        ts = await make_tenant(sessionmaker)
        off = BookingPolicy(guards=GuardPolicy(enabled=False))
        results = await asyncio.gather(
            *[_book(sessionmaker, cal, call_id=f"call_{i}", policy=off, tenant_service=ts) for i in range(5)]
        )
        booked = [r for r in results if r.status == "booked"]
        assert len(booked) == 1
        assert {r.status for r in results} == {"booked", "rejected_duplicate"}
        assert await _count(sessionmaker, Appointment) == 1
        # layer 3 is off, so every refusal came from the unique index
        assert set(await _layers(sessionmaker, "DUPLICATE BOOKING ID IN DATABASE")) == {"layer4"}

    async def test_own_booking_returned_on_retry_counts_as_replay(self, sessionmaker: Sm) -> None:
        cal = FakeCalendar(slots=[START], create_errors=[OutcomeUnknown("t")], store_before_error=True)
        ts = await make_tenant(sessionmaker)
        await _book(sessionmaker, cal, tenant_service=ts)
        own = next(iter(cal.bookings.values()))
        assert own.metadata["attempt_id"]
        # An old booking carrying our own attempt id is ours at any age.
        aged = replace(own, created_at=own.created_at - timedelta(hours=2))
        from voicebook.booking.guards import Expected, check_returned_booking

        now = datetime.now(UTC)
        verdict = check_returned_booking(
            aged,
            Expected(
                "call_687", own.metadata["attempt_id"], own.attendees[0].email, START, 2563193, now, now
            ),
            GuardPolicy(),
            now,
        )
        assert verdict.accepted
        assert verdict.idempotent_replay
