"""Layers 3 and 4 (``booking/recording.py``) alone: what each writes, on every database backend.

Layer 3 finds the uid already recorded before inserting (guards on); layer 4 is the unique index (guards
off, or a lost race). Either way the same call gets its appointment back as a replay and any other call is
refused; the audit row names the layer that decided.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs
from tests.factories import make_tenant

from voicebook.booking import attempts, recording
from voicebook.booking.attempts import Attempt
from voicebook.booking.types import (
    AnswerStatus,
    AppointmentStatus,
    AttemptState,
    Attendee,
    CalendarBooking,
    GuardLayer,
    GuardVerdict,
)
from voicebook.db.models import Appointment, BookingAttempt, GuardEvent
from voicebook.errors import InvariantViolated

Sm = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
UID = "uid_recorded_once"


def _booking(uid: str = UID) -> CalendarBooking:
    return CalendarBooking(
        uid=uid,
        id=1,
        status="accepted",
        start=START,
        end=START + timedelta(minutes=45),
        event_type_id=2563193,
        created_at=NOW,
        attendees=(Attendee("Jane", "jane@example.com"),),
    )


async def _attempt(sm: Sm, call_id: str, state: AttemptState = AttemptState.SENT) -> Attempt:
    tenant, service = await make_tenant(sm, slug=f"salon-{call_id}", number=f"+4930555{call_id[-3:]}")
    async with sm() as session, session.begin():
        _, attempt = await attempts.claim(
            session,
            {
                "idempotency_key": f"{call_id}|2563193|x",
                "call_id": call_id,
                "company_id": tenant.company_id,
                "service_id": service.id,
                "event_type_id": service.event_type_id,
                "start_at": START,
                "fingerprint": "f",
                "attendee_name": "Jane Roe",
                "attendee_email": "jane@example.com",
            },
            NOW,
            30,
        )
        await session.execute(
            BookingAttempt.__table__.update().where(BookingAttempt.id == attempt.id).values(state=state)
        )
        return await attempts.get(session, attempt.id)


async def _appointment_of(sm: Sm, call_id: str) -> int:
    async with sm() as session, session.begin():
        row = Appointment(
            call_id=call_id,
            calcom_booking_uid=UID,
            start_at=START,
            end_at=START + timedelta(minutes=45),
            status=AppointmentStatus.BOOKED,
            source="voicebook",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(row)
        await session.flush()
        return row.id


async def _reload(sm: Sm, attempt: Attempt) -> Attempt:
    async with sm() as session:
        return await attempts.get(session, attempt.id)


async def _events(sm: Sm) -> list[GuardEvent]:
    async with sm() as session:
        return list((await session.execute(select(GuardEvent).order_by(GuardEvent.id))).scalars())


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _record(sm: Sm, attempt: Attempt, *, guards: bool, **kw: Any) -> recording.Recorded:
    return await recording.record_booking(
        sm, attempt, _booking(), customer_id=kw.pop("customer_id", None), guards_enabled=guards, now=NOW, **kw
    )


@pytest.mark.asyncio
async def test_a_new_uid_is_recorded_with_every_field(sessionmaker: Sm) -> None:
    attempt = await _attempt(sessionmaker, "call_687")
    verdict = {
        "layer": GuardLayer.OWNERSHIP,
        "verdict": GuardVerdict.ACCEPTED,
        "reason": "ours",
        "call_id": "call_687",
        "attempt_id": attempt.public_id,
        "company_id": attempt.company_id,
        "calcom_booking_uid": UID,
    }
    recorded = await _record(sessionmaker, attempt, guards=True, verdict=verdict)
    assert (recorded.replayed, recorded.moved_elsewhere) == (False, False)
    assert recorded.appointment is not None
    async with sessionmaker() as session:
        row = await session.get_one(Appointment, recorded.appointment.id)
    assert (row.company_id, row.service_id, row.customer_id, row.call_id, row.attempt_id) == (
        attempt.company_id,
        attempt.service_id,
        None,
        "call_687",
        attempt.id,
    )
    assert (row.calcom_booking_uid, row.event_type_id, row.status, row.source) == (
        UID,
        2563193,
        AppointmentStatus.BOOKED,
        "voicebook",
    )
    assert (row.start_at, row.end_at) == (START, START + timedelta(minutes=45))
    assert (row.attendee_name, row.attendee_email) == ("Jane Roe", "jane@example.com")
    assert row.created_at == row.updated_at == row.synced_at == NOW
    settled = await _reload(sessionmaker, attempt)
    assert (settled.state, settled.calcom_booking_uid, settled.locked_until) == (
        AttemptState.RECORDED,
        UID,
        None,
    )
    assert settled.guard_verdict == GuardVerdict.ACCEPTED
    assert settled.answer_snapshot == {
        "status": "booked",
        "calcom_booking_uid": UID,
        "start": START.isoformat(),
    }
    (event,) = await _events(sessionmaker)
    assert (event.layer, event.verdict, event.calcom_booking_uid) == (GuardLayer.OWNERSHIP, "accepted", UID)


@pytest.mark.asyncio
async def test_without_a_verdict_no_event_and_no_guard_verdict(sessionmaker: Sm) -> None:
    attempt = await _attempt(sessionmaker, "call_687")
    tenant_customer = None
    recorded = await _record(sessionmaker, attempt, guards=True, customer_id=tenant_customer)
    assert recorded.appointment is not None
    assert await _events(sessionmaker) == []
    assert (await _reload(sessionmaker, attempt)).guard_verdict is None


@pytest.mark.asyncio
@pytest.mark.parametrize("state", [AttemptState.CLAIMED, AttemptState.RECORDED, AttemptState.FAILED])
async def test_an_attempt_moved_elsewhere_writes_nothing(sessionmaker: Sm, state: AttemptState) -> None:
    attempt = await _attempt(sessionmaker, "call_687", state)
    verdict = {
        "layer": GuardLayer.OWNERSHIP,
        "verdict": GuardVerdict.ACCEPTED,
        "reason": "ours",
        "call_id": "call_687",
        "attempt_id": attempt.public_id,
        "company_id": attempt.company_id,
        "calcom_booking_uid": UID,
    }
    recorded = await _record(sessionmaker, attempt, guards=True, verdict=verdict)
    assert recorded == recording.Recorded(None, replayed=False, moved_elsewhere=True)
    async with sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(Appointment))).scalar_one() == 0
    assert await _events(sessionmaker) == []  # rolled back with everything else
    assert (await _reload(sessionmaker, attempt)).state == state


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("guards", "layer"),
    [(True, GuardLayer.DATABASE), (False, GuardLayer.CONSTRAINT)],
    ids=["layer3", "layer4"],
)
@pytest.mark.parametrize("state", [AttemptState.SENT, AttemptState.UNKNOWN, AttemptState.CONFIRMED])
async def test_the_same_call_gets_its_appointment_back_as_a_replay(
    sessionmaker: Sm, guards: bool, layer: GuardLayer, state: AttemptState
) -> None:
    existing_id = await _appointment_of(sessionmaker, "call_687")
    attempt = await _attempt(sessionmaker, "call_687", state)
    constraint = "uq_appointment_calcom_booking_uid"
    before = _counter("voicebook_constraint_violations_total", constraint=constraint)
    recorded = await _record(sessionmaker, attempt, guards=guards)
    assert recorded.replayed is True
    assert recorded.moved_elsewhere is False
    assert recorded.appointment is not None
    assert recorded.appointment.id == existing_id
    settled = await _reload(sessionmaker, attempt)
    assert (settled.state, settled.calcom_booking_uid, settled.locked_until) == (
        AttemptState.RECORDED,
        UID,
        None,
    )
    assert settled.guard_verdict == GuardVerdict.IDEMPOTENT_REPLAY
    assert settled.answer_snapshot == {
        "status": "booked",
        "calcom_booking_uid": UID,
        "start": START.isoformat(),
    }
    (event,) = await _events(sessionmaker)
    assert (event.layer, event.verdict, event.reason) == (
        layer,
        GuardVerdict.IDEMPOTENT_REPLAY,
        "appointment of this call already recorded",
    )
    assert (event.call_id, event.attempt_id, event.company_id, event.calcom_booking_uid) == (
        "call_687",
        attempt.public_id,
        attempt.company_id,
        UID,
    )
    after = _counter("voicebook_constraint_violations_total", constraint=constraint)
    assert after - before == (0 if guards else 1)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("guards", "layer", "label"),
    [(True, GuardLayer.DATABASE, "duplicate_in_db"), (False, GuardLayer.CONSTRAINT, "constraint")],
    ids=["layer3", "layer4"],
)
async def test_another_calls_uid_is_refused_and_never_handed_over(
    sessionmaker: Sm, guards: bool, layer: GuardLayer, label: str
) -> None:
    existing_id = await _appointment_of(sessionmaker, "call_686")
    attempt = await _attempt(sessionmaker, "call_687", AttemptState.UNKNOWN)
    before = _counter("voicebook_guard_rejections_total", layer=label)
    with capture_logs() as logs:
        recorded = await _record(sessionmaker, attempt, guards=guards)
    assert recorded == recording.Recorded(None, replayed=False)
    settled = await _reload(sessionmaker, attempt)
    assert (settled.state, settled.calcom_booking_uid, settled.locked_until) == (
        AttemptState.REJECTED,
        UID,
        None,
    )
    assert settled.guard_verdict == GuardVerdict.DUPLICATE
    assert settled.answer_snapshot == {
        "status": AnswerStatus.REJECTED_DUPLICATE,
        "guard": GuardVerdict.DUPLICATE,
    }
    (event,) = await _events(sessionmaker)
    assert (event.layer, event.verdict) == (layer, GuardVerdict.DUPLICATE)
    assert event.reason == f"booking uid already recorded for appointment {existing_id} of another call"
    assert (event.call_id, event.attempt_id, event.company_id, event.calcom_booking_uid) == (
        "call_687",
        attempt.public_id,
        attempt.company_id,
        UID,
    )
    assert event.details == {"owner_call_id": "call_686"}
    assert [e["log_level"] for e in logs if e["event"] == GuardVerdict.DUPLICATE] == ["warning"]
    assert _counter("voicebook_guard_rejections_total", layer=label) - before == 1
    async with sessionmaker() as session:
        owners = (await session.execute(select(Appointment.call_id))).scalars().all()
    assert owners == ["call_686"]


@pytest.mark.asyncio
async def test_a_stand_in_without_a_call_is_refused_with_an_empty_owner(sessionmaker: Sm) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(
            Appointment(
                calcom_booking_uid=UID,
                start_at=START,
                status=AppointmentStatus.BOOKED,
                source="external",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    attempt = await _attempt(sessionmaker, "call_687")
    recorded = await _record(sessionmaker, attempt, guards=True)
    assert recorded.appointment is None
    (event,) = await _events(sessionmaker)
    assert event.details == {"owner_call_id": ""}


def test_recordable_states_are_the_sent_ones() -> None:
    assert recording.RECORDABLE == (AttemptState.SENT, AttemptState.UNKNOWN, AttemptState.CONFIRMED)


@pytest.mark.asyncio
async def test_a_unique_violation_whose_holder_vanished_is_an_invariant_violation(
    sessionmaker: Sm, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _appointment_of(sessionmaker, "call_686")
    attempt = await _attempt(sessionmaker, "call_687")

    async def vanished(session: AsyncSession, uid: str) -> None:
        return None

    monkeypatch.setattr(recording, "_existing", vanished)
    with pytest.raises(InvariantViolated, match=r"^unique violation without a holder$"):
        await _record(sessionmaker, attempt, guards=True)
