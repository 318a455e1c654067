"""Cal.com webhooks applied to appointments, on every database backend: repeats and reorderings converge."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant
from tests.fakes import FakeCalendar

from voicebook.booking import flow
from voicebook.booking.calendar_sync import apply_calendar_change
from voicebook.booking.identity import idempotency_key
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.tenancy import CallContext
from voicebook.calcom.webhooks import parse_change
from voicebook.db.models import Appointment, BookingAttempt

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
Sm = async_sessionmaker[AsyncSession]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def event(
    trigger: str,
    uid: str,
    *,
    start: datetime = START,
    metadata: dict[str, str] | None = None,
    reschedule_uid: str | None = None,
    status: str = "ACCEPTED",
) -> dict[str, Any]:
    """A webhook body as Cal.com sends it (tests/contract/data/BEHAVIOUR.md §5), trimmed."""
    payload: dict[str, Any] = {
        "type": "haarschnitt",
        "title": "Haarschnitt",
        "uid": uid,
        "bookingId": 42,
        "eventTypeId": 2563193,
        "startTime": _iso(start),
        "endTime": _iso(start + timedelta(minutes=30)),
        "status": status,
        "metadata": metadata or {},
        "attendees": [{"email": "walk.in@example.com", "name": "Walk In", "timeZone": "Europe/Berlin"}],
        "organizer": {"id": 1, "name": "Salon", "email": "salon@example.com", "timeZone": "Europe/Berlin"},
    }
    if reschedule_uid:
        payload |= {"rescheduleUid": reschedule_uid, "rescheduleStartTime": _iso(START)}
    return {"triggerEvent": trigger, "createdAt": _iso(datetime.now(UTC)), "payload": payload}


async def apply(sm: Sm, body: dict[str, Any]) -> str:
    async with sm() as session, session.begin():
        return await apply_calendar_change(session, parse_change(body))


async def rows(sm: Sm) -> list[Appointment]:
    async with sm() as session:
        return list((await session.execute(select(Appointment).order_by(Appointment.id))).scalars())


async def booked_by_flow(sm: Sm, uid: str, start: datetime = START) -> Appointment:
    tenant, service = await make_tenant(sm)
    async with sm() as session, session.begin():
        row = Appointment(
            company_id=tenant.company_id,
            service_id=service.id,
            call_id="call_687",
            calcom_booking_uid=uid,
            event_type_id=2563193,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            status="booked",
            source="voicebook",
        )
        session.add(row)
    return row


@pytest.mark.asyncio
class TestCalcomEvents:
    async def test_unknown_booking_is_recorded_once_as_external(self, sessionmaker: Sm) -> None:
        tenant, service = await make_tenant(sessionmaker)
        assert await apply(sessionmaker, event("BOOKING_CREATED", "ext-1")) == "created_external"
        assert await apply(sessionmaker, event("BOOKING_CREATED", "ext-1")) == "unchanged"
        (row,) = await rows(sessionmaker)
        assert (row.source, row.status, row.call_id) == ("external", "booked", None)
        assert (row.company_id, row.service_id) == (tenant.company_id, service.id)
        assert row.start_at == START
        assert row.end_at == START + timedelta(minutes=30)
        assert row.attendee_email == "walk.in@example.com"

    async def test_concurrent_repeats_make_one_row(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        results = await asyncio.gather(
            *[apply(sessionmaker, event("BOOKING_CREATED", "ext-2")) for _ in range(5)]
        )
        assert results.count("created_external") == 1
        assert set(results) == {"created_external", "unchanged"}
        assert len(await rows(sessionmaker)) == 1

    async def test_cancelled_before_created_ends_cancelled(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        assert (
            await apply(sessionmaker, event("BOOKING_CANCELLED", "ext-3", status="CANCELLED")) == "cancelled"
        )
        assert await apply(sessionmaker, event("BOOKING_CREATED", "ext-3")) == "unchanged"
        assert (
            await apply(sessionmaker, event("BOOKING_CANCELLED", "ext-3", status="CANCELLED")) == "unchanged"
        )
        (row,) = await rows(sessionmaker)
        assert row.status == "cancelled"

    async def test_cancelled_after_created(self, sessionmaker: Sm) -> None:
        await booked_by_flow(sessionmaker, "ours-1")
        assert (
            await apply(sessionmaker, event("BOOKING_CANCELLED", "ours-1", status="CANCELLED")) == "cancelled"
        )
        (row,) = await rows(sessionmaker)
        assert (row.status, row.source, row.call_id) == ("cancelled", "voicebook", "call_687")

    async def test_rescheduled_moves_the_appointment(self, sessionmaker: Sm) -> None:
        later = START + timedelta(hours=2)
        await booked_by_flow(sessionmaker, "old-uid")
        moved = event("BOOKING_RESCHEDULED", "new-uid", start=later, reschedule_uid="old-uid")
        assert await apply(sessionmaker, moved) == "rescheduled"
        assert await apply(sessionmaker, moved) == "unchanged"
        # Late events about the old booking are history.
        assert await apply(sessionmaker, event("BOOKING_CREATED", "old-uid")) == "unchanged"
        assert (
            await apply(sessionmaker, event("BOOKING_CANCELLED", "old-uid", status="CANCELLED"))
            == "unchanged"
        )
        (row,) = await rows(sessionmaker)
        assert (row.calcom_booking_uid, row.rescheduled_from_uid) == ("new-uid", "old-uid")
        assert (row.start_at, row.status, row.call_id) == (later, "booked", "call_687")

    async def test_new_booking_cancelled_before_the_reschedule_event_folds_in(self, sessionmaker: Sm) -> None:
        later = START + timedelta(hours=2)
        await booked_by_flow(sessionmaker, "old-uid")
        cancelled = event("BOOKING_CANCELLED", "new-uid", start=later, status="CANCELLED")
        assert await apply(sessionmaker, cancelled) == "cancelled"
        moved = event("BOOKING_RESCHEDULED", "new-uid", start=later, reschedule_uid="old-uid")
        assert await apply(sessionmaker, moved) == "rescheduled"
        (row,) = await rows(sessionmaker)
        assert (row.calcom_booking_uid, row.status, row.call_id) == ("new-uid", "cancelled", "call_687")

    async def test_reschedule_of_an_unknown_booking_is_recorded_as_external(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        moved = event("BOOKING_RESCHEDULED", "new-uid", reschedule_uid="never-seen")
        assert await apply(sessionmaker, moved) == "created_external"
        assert await apply(sessionmaker, event("BOOKING_CREATED", "never-seen")) == "unchanged"
        (row,) = await rows(sessionmaker)
        assert (row.calcom_booking_uid, row.rescheduled_from_uid, row.source) == (
            "new-uid",
            "never-seen",
            "external",
        )

    async def test_booking_our_flow_recorded_is_unchanged(self, sessionmaker: Sm) -> None:
        tenant, service = await make_tenant(sessionmaker)
        cal = FakeCalendar(slots=[START])
        args = flow.BookArgs(service=service, start=START, name="Jörg Müller", phone="+491701234567")
        outcome = await flow.book(
            sessionmaker,
            cal,
            BookingPolicy(),
            tenant,
            CallContext("call_687", "+491701234567", "+49301234567"),
            args,
        )
        assert outcome.appointment is not None
        booking = cal.bookings[outcome.appointment.calcom_booking_uid]
        body = event("BOOKING_CREATED", booking.uid, metadata=booking.metadata)
        assert await apply(sessionmaker, body) == "unchanged"
        (row,) = await rows(sessionmaker)
        assert (row.source, row.call_id) == ("voicebook", "call_687")

    async def test_booking_of_an_attempt_in_flight_is_left_to_the_flow(self, sessionmaker: Sm) -> None:
        tenant, service = await make_tenant(sessionmaker)
        now = datetime.now(UTC)
        public_id = uuid.uuid4().hex
        async with sessionmaker() as session, session.begin():
            session.add(
                BookingAttempt(
                    public_id=public_id,
                    idempotency_key=idempotency_key("call_687", 2563193, START),
                    call_id="call_687",
                    company_id=tenant.company_id,
                    service_id=service.id,
                    event_type_id=2563193,
                    start_at=START,
                    state="sent",
                    fingerprint="f" * 64,
                    attendee_name="Jörg Müller",
                    attendee_email="booking+call_687@salon-mitte.example",
                    tries=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        body = event(
            "BOOKING_CREATED", "in-flight", metadata={"call_id": "call_687", "attempt_id": public_id}
        )
        assert await apply(sessionmaker, body) == "ours_pending"
        assert await rows(sessionmaker) == []
        async with sessionmaker() as session, session.begin():
            (await session.execute(select(BookingAttempt))).scalar_one().state = "failed"
        assert await apply(sessionmaker, body) == "ours_orphan"
        assert await rows(sessionmaker) == []

    async def test_untracked_or_unreadable_events_are_ignored(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        assert await apply(sessionmaker, event("MEETING_ENDED", "x")) == "ignored"
        assert await apply(sessionmaker, {"triggerEvent": "BOOKING_CREATED", "payload": {}}) == "ignored"
        bad = event("BOOKING_CREATED", "y")
        bad["payload"]["startTime"] = "not a time"
        assert await apply(sessionmaker, bad) == "ignored"
        assert await rows(sessionmaker) == []
