"""The reconciler against FakeCalendar, on every database backend: open attempts are settled exactly once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant
from tests.fakes import FakeCalendar

from voicebook.booking.errors import CalendarUnavailable
from voicebook.booking.identity import idempotency_key
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.reconcile import driver as reconciler
from voicebook.booking.reconcile.context import ReconcileSummary
from voicebook.booking.tenancy import ServiceRef, Tenant
from voicebook.booking.types import Attendee, BookingQuery, CalendarBooking
from voicebook.db.models import Appointment, BookingAttempt, GuardEvent

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
Sm = async_sessionmaker[AsyncSession]
POLICY = BookingPolicy()


@dataclass
class CountingCalendar(FakeCalendar):
    """FakeCalendar that counts what the reconciler asked, and yields so concurrent passes interleave."""

    lookups: int = 0
    gets: int = 0
    cancels: list[str] = field(default_factory=list)

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return await super().find_bookings(query)

    async def get_booking(self, uid: str) -> CalendarBooking | None:
        self.gets += 1
        await asyncio.sleep(0.01)
        return await super().get_booking(uid)

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking:
        self.cancels.append(uid)
        return await super().cancel_booking(uid, reason)


def _email(call_id: str) -> str:
    return f"booking+{call_id}@salon-mitte.example"


async def _attempt(
    sm: Sm,
    ts: tuple[Tenant, ServiceRef],
    *,
    state: str,
    call_id: str = "call_687",
    start: datetime = START,
    sent_ago: timedelta | None = timedelta(minutes=5),
    updated_ago: timedelta = timedelta(minutes=5),
    uid: str | None = None,
    locked_for: timedelta = timedelta(seconds=-1),
) -> BookingAttempt:
    """An attempt as a crashed or interrupted flow leaves it (its lock expired unless ``locked_for`` > 0)."""
    tenant, service = ts
    now = datetime.now(UTC)
    attempt = BookingAttempt(
        public_id=uuid.uuid4().hex,
        idempotency_key=idempotency_key(call_id, service.event_type_id, start),
        call_id=call_id,
        company_id=tenant.company_id,
        service_id=service.id,
        event_type_id=service.event_type_id,
        start_at=start,
        state=state,
        fingerprint="f" * 64,
        attendee_name="Jörg Müller",
        attendee_email=_email(call_id),
        attendee_phone="+491701234567",
        calcom_booking_uid=uid,
        first_sent_at=now - sent_ago if sent_ago is not None else None,
        locked_until=now + locked_for,
        tries=1,
        created_at=now - max(updated_ago, sent_ago or timedelta()),
        updated_at=now - updated_ago,
    )
    async with sm() as session, session.begin():
        session.add(attempt)
    return attempt


def _upstream(
    cal: FakeCalendar,
    attempt: BookingAttempt | None,
    *,
    call_id: str = "call_687",
    start: datetime = START,
    metadata: dict[str, str] | None = None,
) -> CalendarBooking:
    """Put a booking into the fake Cal.com, carrying ``attempt``'s ids unless ``metadata`` says otherwise."""
    if metadata is None:
        assert attempt is not None
        metadata = {"call_id": attempt.call_id, "attempt_id": attempt.public_id}
    booking = CalendarBooking(
        uid=uuid.uuid4().hex[:22],
        id=len(cal.bookings) + 1,
        status="accepted",
        start=start,
        end=start + timedelta(minutes=30),
        event_type_id=2563193,
        created_at=datetime.now(UTC),
        attendees=(Attendee("Jörg Müller", _email(call_id)),),
        metadata=metadata,
    )
    cal.bookings[booking.uid] = booking
    return booking


async def _count(sm: Sm, model: type, *where: Any) -> int:
    async with sm() as session:
        return int(
            (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


async def _state(sm: Sm, attempt: BookingAttempt) -> BookingAttempt:
    async with sm() as session:
        return (
            await session.execute(select(BookingAttempt).where(BookingAttempt.id == attempt.id))
        ).scalar_one()


async def _verdicts(sm: Sm) -> list[str]:
    async with sm() as session:
        rows = await session.execute(
            select(GuardEvent.verdict).where(GuardEvent.layer == "reconciler").order_by(GuardEvent.id)
        )
        return list(rows.scalars())


GRACE_PASSED = timedelta(minutes=16)  # the reconciler's default orphan grace is 15 minutes


async def _once(sm: Sm, cal: FakeCalendar, owner: str = "worker-a", **kw: float) -> ReconcileSummary:
    return await reconciler.reconcile_once(sm, cal, POLICY, owner=owner, **kw)  # type: ignore[arg-type]


@pytest.mark.asyncio
class TestOpenAttempts:
    async def test_sent_attempt_with_upstream_booking_is_recorded(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="sent")
        booking = _upstream(cal, attempt)
        summary = await _once(sessionmaker, cal)
        assert summary.recorded == 1
        assert summary.rows == [(attempt.public_id, "sent", "recorded")]
        assert (await _state(sessionmaker, attempt)).state == "recorded"
        assert await _count(sessionmaker, Appointment, Appointment.calcom_booking_uid == booking.uid) == 1
        assert await _verdicts(sessionmaker) == ["recorded"]
        again = await _once(sessionmaker, cal)
        assert again.rows == []
        assert await _count(sessionmaker, Appointment) == 1

    async def test_unknown_without_upstream_booking_fails_after_deadline(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        old = await _attempt(sessionmaker, ts, state="unknown", sent_ago=timedelta(hours=2))
        young = await _attempt(sessionmaker, ts, state="unknown", call_id="call_688")
        summary = await _once(sessionmaker, cal, deadline_seconds=3600)
        assert summary.failed == 1
        assert summary.still_open == 1
        assert (await _state(sessionmaker, old)).state == "failed"
        assert (await _state(sessionmaker, young)).state == "unknown"
        assert await _count(sessionmaker, Appointment) == 0
        assert summary.backlog == 1

    async def test_confirmed_not_recorded_is_recorded(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="sent")
        booking = _upstream(cal, attempt)
        async with sessionmaker() as session, session.begin():
            row = await session.get_one(BookingAttempt, attempt.id)
            row.state, row.calcom_booking_uid = "confirmed", booking.uid
        summary = await _once(sessionmaker, cal)
        assert summary.recorded == 1
        assert cal.gets == 1
        assert cal.lookups == 0
        assert (await _state(sessionmaker, attempt)).state == "recorded"
        assert await _count(sessionmaker, Appointment, Appointment.calcom_booking_uid == booking.uid) == 1

    async def test_failing_lookup_leaves_attempt_open(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar(lookup_error=CalendarUnavailable("Cal.com down"))
        attempt = await _attempt(sessionmaker, ts, state="unknown", sent_ago=timedelta(hours=5))
        _upstream(cal, attempt)
        summary = await _once(sessionmaker, cal)
        assert summary.still_open == 1
        assert summary.failed == 0
        after = await _state(sessionmaker, attempt)
        assert after.state == "unknown"
        assert after.lease_owner is None  # released for the next pass
        assert summary.backlog == 1
        assert summary.oldest_open_seconds >= 5 * 3600 - 60
        assert await _verdicts(sessionmaker) == ["still_open"]

    async def test_attempt_locked_by_a_live_flow_is_left_alone(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        await _attempt(sessionmaker, ts, state="sent", locked_for=timedelta(seconds=30))
        summary = await _once(sessionmaker, cal)
        assert summary.rows == []
        assert cal.lookups == 0

    async def test_claimed_never_sent_is_failed_without_asking_calcom(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="claimed", sent_ago=None)
        summary = await _once(sessionmaker, cal)
        assert summary.failed == 1
        assert cal.lookups == 0
        assert (await _state(sessionmaker, attempt)).state == "failed"

    async def test_concurrent_passes_work_each_attempt_once(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        made = []
        for i in range(6):
            attempt = await _attempt(
                sessionmaker, ts, state="sent", call_id=f"call_{i}", start=START + timedelta(hours=i)
            )
            made.append(_upstream(cal, attempt, call_id=f"call_{i}", start=START + timedelta(hours=i)))
        a, b = await asyncio.gather(
            _once(sessionmaker, cal, "worker-a"), _once(sessionmaker, cal, "worker-b")
        )
        assert a.recorded + b.recorded == 6
        assert cal.lookups == 6
        assert {r[0] for r in a.rows}.isdisjoint({r[0] for r in b.rows})
        assert await _count(sessionmaker, Appointment) == 6
        assert await _count(sessionmaker, BookingAttempt, BookingAttempt.state == "recorded") == 6
        assert await _verdicts(sessionmaker) == ["recorded"] * 6


@pytest.mark.asyncio
class TestOrphans:
    async def test_orphan_of_failed_attempt_is_cancelled_exactly_once(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="failed", updated_ago=GRACE_PASSED)
        orphan = _upstream(cal, attempt)
        first = await asyncio.gather(
            _once(sessionmaker, cal, "worker-a"), _once(sessionmaker, cal, "worker-b")
        )
        second = await _once(sessionmaker, cal)
        assert cal.cancels == [orphan.uid]
        assert cal.bookings[orphan.uid].status == "cancelled"
        assert sum(s.orphans_cancelled for s in first) == 1
        assert second.orphans_cancelled == 0
        assert cal.lookups == 1  # stamped: not even looked up again
        assert (await _state(sessionmaker, attempt)).orphan_cancelled_at is not None
        assert await _verdicts(sessionmaker) == ["orphan_cancelled"]

    async def test_a_recent_failure_is_not_an_orphan_while_a_retry_could_still_claim_it(
        self, sessionmaker: Sm
    ) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="failed", updated_ago=timedelta(minutes=14))
        _upstream(cal, attempt)
        summary = await _once(sessionmaker, cal)
        assert (summary.orphans_cancelled, cal.cancels, cal.lookups) == (0, [], 0)
        summary = await _once(sessionmaker, cal, orphan_grace_seconds=13 * 60)
        assert summary.orphans_cancelled == 1

    async def test_foreign_booking_of_rejected_attempt_is_never_cancelled(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        foreign_with_ids = _upstream(cal, None, metadata={"call_id": "call_686", "attempt_id": "0" * 32})
        foreign_bare = _upstream(cal, None, start=START + timedelta(minutes=30), metadata={})
        await _attempt(sessionmaker, ts, state="rejected", uid=foreign_with_ids.uid, updated_ago=GRACE_PASSED)
        await _attempt(
            sessionmaker,
            ts,
            state="rejected",
            call_id="call_687b",
            uid=foreign_bare.uid,
            updated_ago=GRACE_PASSED,
        )
        for _ in range(2):
            summary = await _once(sessionmaker, cal)
            assert summary.orphans_cancelled == 0
        assert cal.cancels == []
        assert {b.status for b in cal.bookings.values()} == {"accepted"}

    async def test_orphan_with_a_local_appointment_is_kept(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="failed", updated_ago=GRACE_PASSED)
        booking = _upstream(cal, attempt)
        async with sessionmaker() as session, session.begin():
            session.add(
                Appointment(
                    company_id=ts[0].company_id,
                    call_id="call_687",
                    calcom_booking_uid=booking.uid,
                    start_at=START,
                    status="booked",
                )
            )
        await _once(sessionmaker, cal)
        assert cal.cancels == []

    async def test_orphans_outside_the_window_are_not_looked_up(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        attempt = await _attempt(sessionmaker, ts, state="failed", updated_ago=timedelta(hours=80))
        _upstream(cal, attempt)
        await _once(sessionmaker, cal, retention_hours=100)
        assert cal.lookups == 1
        assert len(cal.cancels) == 1
        other = await _attempt(
            sessionmaker, ts, state="failed", call_id="call_9", updated_ago=timedelta(hours=80)
        )
        _upstream(cal, other, call_id="call_9")
        cal.lookups = 0
        await _once(sessionmaker, cal, retention_hours=72)
        assert cal.lookups == 0
        assert len(cal.cancels) == 1


@pytest.mark.asyncio
class TestRetention:
    async def test_old_final_attempts_are_archived_into_guard_events(self, sessionmaker: Sm) -> None:
        ts = await make_tenant(sessionmaker)
        cal = CountingCalendar()
        old = timedelta(hours=100)
        recorded = await _attempt(sessionmaker, ts, state="recorded", uid="uid-recorded", updated_ago=old)
        lost = await _attempt(
            sessionmaker, ts, state="recorded", call_id="call_2", uid="uid-lost", updated_ago=old
        )
        failed = await _attempt(
            sessionmaker, ts, state="failed", call_id="call_3", sent_ago=None, updated_ago=old
        )
        fresh = await _attempt(sessionmaker, ts, state="failed", call_id="call_4", sent_ago=None)
        async with sessionmaker() as session, session.begin():
            session.add(
                Appointment(
                    company_id=ts[0].company_id,
                    call_id="call_687",
                    attempt_id=recorded.id,
                    calcom_booking_uid="uid-recorded",
                    start_at=START,
                    status="booked",
                )
            )
        summary = await _once(sessionmaker, cal, retention_hours=72)
        assert summary.archived == 2
        assert {(r[0], r[2]) for r in summary.rows} == {
            (recorded.public_id, "attempt_archived"),
            (failed.public_id, "attempt_archived"),
        }
        left = {a.public_id for a in await _all_attempts(sessionmaker)}
        assert left == {lost.public_id, fresh.public_id}  # no appointment: the attempt is the only trace
        async with sessionmaker() as session:
            appointment = (await session.execute(select(Appointment))).scalar_one()
            assert appointment.attempt_id is None
            event = (
                await session.execute(select(GuardEvent).where(GuardEvent.attempt_id == recorded.public_id))
            ).scalar_one()
        assert event.verdict == "attempt_archived"
        assert event.details is not None
        assert event.details["public_id"] == recorded.public_id
        assert event.details["state"] == "recorded"
        assert event.details["calcom_booking_uid"] == "uid-recorded"
        assert event.details["attendee_email"] == _email("call_687")
        assert datetime.fromisoformat(event.details["start_at"]) == START


async def _all_attempts(sm: Sm) -> list[BookingAttempt]:
    async with sm() as session:
        return list((await session.execute(select(BookingAttempt))).scalars())


@pytest.mark.asyncio
async def test_run_periodically_survives_a_failing_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = asyncio.Event()
    calls: list[str] = []

    async def fake_once(*_args: object, owner: str, **_kw: object) -> ReconcileSummary:
        calls.append(owner)
        if len(calls) == 1:
            raise RuntimeError("database restarting")
        if len(calls) == 3:
            stop.set()
        return ReconcileSummary()

    monkeypatch.setattr(reconciler, "reconcile_once", fake_once)
    await asyncio.wait_for(
        reconciler.run_periodically(
            cast(Sm, None), FakeCalendar(), POLICY, interval_seconds=0.01, owner="w", stop=stop
        ),
        timeout=5,
    )
    assert calls == ["w", "w", "w"]


@pytest.mark.asyncio
async def test_concurrent_passes_archive_each_attempt_once(sessionmaker: Sm) -> None:
    ts = await make_tenant(sessionmaker)
    for i in range(4):
        await _attempt(
            sessionmaker,
            ts,
            state="failed",
            call_id=f"call_{i}",
            sent_ago=None,
            updated_ago=timedelta(hours=100),
        )
    cal = CountingCalendar()
    summaries = await asyncio.gather(*[_once(sessionmaker, cal, f"worker-{i}") for i in range(3)])
    assert sum(s.archived for s in summaries) == 4
    assert await _all_attempts(sessionmaker) == []
    assert await _verdicts(sessionmaker) == ["attempt_archived"] * 4
