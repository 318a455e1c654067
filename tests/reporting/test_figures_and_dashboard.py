"""Report figures on all three databases: counts per window, hourly buckets, today's rows, stuck attempts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant

from voicebook.db.models import Appointment, BookingAttempt, Call, Customer, GuardEvent
from voicebook.errors import ReportWindowError
from voicebook.reporting import dashboard, figures

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)  # 13:30 in Berlin


def attempt(company_id: int, state: str, at: datetime, **fields: object) -> BookingAttempt:
    public_id = uuid.uuid4().hex
    values: dict[str, object] = {
        "public_id": public_id,
        "idempotency_key": f"key-{public_id}",
        "call_id": "call_1",
        "company_id": company_id,
        "event_type_id": 2563193,
        "start_at": at + timedelta(days=1),
        "state": state,
        "fingerprint": "f" * 64,
        "attendee_name": "Eva",
        "attendee_email": "eva.schmidt@example.com",
        "created_at": at,
        "updated_at": at,
        "tries": 1,
        **fields,
    }
    return BookingAttempt(**values)


def guard(company_id: int | None, verdict: str, at: datetime, layer: str = "layer2") -> GuardEvent:
    return GuardEvent(
        created_at=at, layer=layer, verdict=verdict, reason=f"why {verdict}", company_id=company_id
    )


def appointment(
    company_id: int, uid: str, *, created: datetime, start: datetime, **fields: object
) -> Appointment:
    return Appointment(
        company_id=company_id,
        calcom_booking_uid=uid,
        start_at=start,
        created_at=created,
        updated_at=created,
        **fields,
    )


async def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    tenant, service = await make_tenant(sessionmaker)
    cid = tenant.company_id
    inside, outside = NOW - timedelta(hours=2), NOW - timedelta(days=3)
    async with sessionmaker() as session, session.begin():
        customer = Customer(company_id=cid, phone="+491701234567", name="Eva", email="eva@example.com")
        session.add(customer)
        await session.flush()
        session.add_all(
            [
                attempt(cid, "recorded", inside),
                attempt(cid, "recorded", inside + timedelta(minutes=1)),
                attempt(cid, "rejected", inside),
                attempt(cid, "unknown", NOW - timedelta(minutes=30)),
                attempt(cid, "sent", NOW - timedelta(seconds=5)),  # in flight, not stuck
                attempt(cid, "recorded", outside),
                guard(cid, "CALL ID MISMATCH", inside),
                guard(cid, "CALL ID MISMATCH", inside + timedelta(minutes=5)),
                guard(cid, "STALE BOOKING DETECTED", NOW - timedelta(hours=1), layer="layer1"),
                guard(cid, "idempotent_replay", inside),
                guard(cid, "accepted", inside, layer="layer3"),
                guard(cid, "CALL ID MISMATCH", outside),
                Call(
                    retell_call_id="call_today",
                    company_id=cid,
                    from_number="+491701234567",
                    started_at=NOW - timedelta(hours=1),
                    created_at=NOW - timedelta(hours=1),
                    updated_at=NOW,
                ),
                Call(retell_call_id="call_old", company_id=cid, created_at=outside, updated_at=outside),
                appointment(
                    cid,
                    "uid-today",
                    created=inside,
                    start=NOW + timedelta(hours=2),
                    service_id=service.id,
                    customer_id=customer.id,
                    attendee_name="Eva",
                    attendee_email="eva@example.com",
                    call_id="call_today",
                ),
                appointment(cid, "uid-tomorrow", created=inside, start=NOW + timedelta(days=1)),
                appointment(cid, "uid-old", created=outside, start=outside),
            ]
        )
    return cid


@pytest.mark.asyncio
class TestFigures:
    async def test_counts_only_the_window(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        cid = await seed(sessionmaker)
        async with sessionmaker() as session:
            got = await figures.figures(session, NOW - timedelta(days=1), NOW, now=NOW)
        assert got.attempts_by_state == {"recorded": 2, "rejected": 1, "unknown": 1, "sent": 1}
        assert got.attempts == 5
        assert got.booked_appointments == 2
        assert {(r.layer, r.verdict, r.count) for r in got.guard_rejections} == {
            ("layer2", "CALL ID MISMATCH", 2),
            ("layer1", "STALE BOOKING DETECTED", 1),
        }
        assert got.rejections == 3
        assert got.rejection_rate == pytest.approx(3 / 5)
        assert got.idempotent_replays == 1
        assert got.calls == 1
        assert [s.state for s in got.stuck] == ["unknown"]
        assert got.oldest_stuck_seconds == pytest.approx(30 * 60)
        assert got.company_id is None
        async with sessionmaker() as session:
            other = await figures.figures(session, NOW - timedelta(days=1), NOW, company_id=cid + 1, now=NOW)
        assert other.attempts == 0
        assert other.rejection_rate == 0.0
        assert other.stuck == ()

    async def test_window_end_is_exclusive(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        await seed(sessionmaker)
        async with sessionmaker() as session:
            got = await figures.figures(session, NOW - timedelta(hours=2), NOW - timedelta(hours=1), now=NOW)
        assert got.booked_appointments == 2
        assert {(r.verdict, r.count) for r in got.guard_rejections} == {("CALL ID MISMATCH", 2)}

    async def test_naive_window_is_refused(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        async with sessionmaker() as session:
            with pytest.raises(ReportWindowError, match="aware"):
                await figures.figures(session, datetime(2026, 1, 1), NOW)


@pytest.mark.asyncio
class TestHourlySeries:
    async def test_every_hour_present_bookings_and_rejections_bucketed(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await seed(sessionmaker)
        async with sessionmaker() as session:
            series = await dashboard.hourly_series(session, NOW - timedelta(hours=48), NOW)
        assert len(series) == 49  # 48 h from 12:30 reaches into 49 clock hours
        assert series[0].hour == datetime(2026, 3, 8, 12, tzinfo=UTC)
        by_hour = {b.hour: b for b in series}
        assert by_hour[datetime(2026, 3, 10, 10, tzinfo=UTC)].booked == 2
        assert by_hour[datetime(2026, 3, 10, 10, tzinfo=UTC)].rejected == 2
        assert by_hour[datetime(2026, 3, 10, 11, tzinfo=UTC)].rejected == 1
        assert sum(b.booked for b in series) == 2
        assert sum(b.rejected for b in series) == 3


@pytest.mark.asyncio
class TestToday:
    async def test_calls_and_appointments_of_today_in_company_zone_masked(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await seed(sessionmaker)
        async with sessionmaker() as session:
            calls = await dashboard.todays_calls(session, now=NOW)
            appointments = await dashboard.todays_appointments(session, now=NOW)
        assert [c.call_id for c in calls] == ["call_today"]
        assert calls[0].from_number == "+49170*****67"
        assert calls[0].at.utcoffset() == timedelta(hours=1)
        assert [a.calcom_booking_uid for a in appointments] == ["uid-today"]
        only = appointments[0]
        assert only.attendee_email == "e***@example.com"
        assert only.phone == "+49170*****67"
        assert only.service == "Haarschnitt"
        assert only.start_at == (NOW + timedelta(hours=2)).astimezone(BERLIN)

    async def test_local_midnight_not_utc_midnight(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        tenant, _ = await make_tenant(sessionmaker)
        late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already 11 March in Berlin
        async with sessionmaker() as session, session.begin():
            session.add(
                Call(retell_call_id="c1", company_id=tenant.company_id, started_at=late - timedelta(hours=1))
            )
        async with sessionmaker() as session:
            assert await dashboard.todays_calls(session, now=late) == []
            assert [
                c.call_id for c in await dashboard.todays_calls(session, now=late - timedelta(hours=1))
            ] == ["c1"]


@pytest.mark.asyncio
class TestEventsAndStuck:
    async def test_recent_events_newest_first_without_routine(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await seed(sessionmaker)
        async with sessionmaker() as session:
            events = await dashboard.recent_guard_events(session, limit=3)
            everything = await dashboard.recent_guard_events(session, limit=100, include_routine=True)
        assert [e.verdict for e in events] == [
            "STALE BOOKING DETECTED",
            "CALL ID MISMATCH",
            "idempotent_replay",
        ]
        assert all(e.verdict != "accepted" for e in events)
        assert events[0].reason == "why STALE BOOKING DETECTED"
        assert events[0].company == "salon-mitte"
        assert len(everything) == 6

    async def test_stuck_attempts_oldest_first_with_age(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await seed(sessionmaker)
        async with sessionmaker() as session:
            stuck = await figures.stuck_attempts(session, now=NOW)
            all_open = await figures.stuck_attempts(session, now=NOW, older_than=timedelta(0))
        assert [(s.state, round(s.age_seconds)) for s in stuck] == [("unknown", 1800)]
        assert stuck[0].attendee_email == "e***@example.com"
        assert stuck[0].company == "salon-mitte"
        assert [s.state for s in all_open] == ["unknown", "sent"]


@pytest.mark.asyncio
class TestUpcomingAndUnbooked:
    async def test_the_next_fourteen_days_after_today_in_company_zone(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        cid = await seed(sessionmaker)
        async with sessionmaker() as session, session.begin():
            session.add_all(
                [
                    appointment(cid, "uid-in-13-days", created=NOW, start=NOW + timedelta(days=13)),
                    appointment(cid, "uid-in-15-days", created=NOW, start=NOW + timedelta(days=15)),
                ]
            )
        async with sessionmaker() as session:
            upcoming = await dashboard.upcoming_appointments(session, now=NOW)
        assert [a.calcom_booking_uid for a in upcoming] == ["uid-tomorrow", "uid-in-13-days"]
        assert all(a.start_at.tzinfo == BERLIN for a in upcoming)

    async def test_attempts_that_did_not_book_carry_their_reason(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        tenant, _ = await make_tenant(sessionmaker)
        cid = tenant.company_id
        async with sessionmaker() as session, session.begin():
            session.add_all(
                [
                    attempt(cid, "failed", NOW - timedelta(hours=1), guard_verdict="calendar_unavailable"),
                    attempt(cid, "rejected", NOW - timedelta(hours=2), guard_verdict="CALL ID MISMATCH"),
                    attempt(cid, "recorded", NOW - timedelta(hours=1)),
                    attempt(cid, "failed", NOW - timedelta(days=2), guard_verdict="reconciler_failed"),
                ]
            )
        async with sessionmaker() as session:
            rows = await dashboard.unbooked_attempts(session, NOW - timedelta(hours=24), NOW)
        assert [(r.state, r.reason) for r in rows] == [
            ("failed", "calendar_unavailable"),
            ("rejected", "CALL ID MISMATCH"),
        ]
        assert rows[0].slot.tzinfo == BERLIN
