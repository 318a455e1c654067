"""The exactly-once promise, end to end: Retell-signed HTTP in, the Cal.com sandbox behind."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from tests.e2e.harness import BERATUNG, Env, running_service

from voicebook.db.models import Appointment, GuardEvent

BERLIN = ZoneInfo("Europe/Berlin")


def next_weekday_at(hour: int, days_ahead: int = 2) -> str:
    day = datetime.now(BERLIN) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


async def appointments_with(env: Env, uid: str) -> int:
    async with env.sessionmaker() as session:
        return int(
            (
                await session.execute(select(func.count()).where(Appointment.calcom_booking_uid == uid))
            ).scalar_one()
        )


@pytest.mark.asyncio
class TestBookOverHttp:
    async def test_books_and_answers_in_company_language(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            start = next_weekday_at(10)
            r = await env.call(
                "book_appointment", {"service": "Haarschnitt", "start": start, "name": "Jörg Müller"}
            )
            assert r.status_code == 200
            body = r.json()
            assert body["ok"] is True, body
            assert body["status"] == "booked"
            assert body["appointment"]["start"].startswith(start)
            assert "Uhr" in body["message"]
            assert len(env.sandbox.bookings) == 1
            stored = env.sandbox.bookings[0]
            assert stored.uid == body["appointment"]["calcom_booking_uid"]
            assert await appointments_with(env, stored.uid) == 1

    async def test_seed_incident_second_caller_never_gets_first_callers_booking(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            start = next_weekday_at(11)
            args = {"service": "Beratung", "start": start, "name": "Anruferin Eins"}
            first = (await env.call("book_appointment", args, call_id="call_687")).json()
            env.sandbox.clock.advance(timedelta(minutes=35))
            second = (
                await env.call(
                    "book_appointment",
                    {**args, "name": "Anrufer Zwei"},
                    call_id="call_688",
                    from_number="+491709876543",
                )
            ).json()
            assert first["status"] == "booked"
            uid = first["appointment"]["calcom_booking_uid"]
            assert second.get("appointment", {}).get("calcom_booking_uid") != uid
            assert await appointments_with(env, uid) == 1

    async def test_same_email_in_two_calls_is_caught_by_call_id_guard(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            start = next_weekday_at(11)  # Beratung is 45 minutes: slots at 08:00, 08:45, ... 11:00
            args = {
                "service": "Beratung",
                "start": start,
                "name": "Familie Meier",
                "email": "meier@example.com",
            }
            first = (await env.call("book_appointment", args, call_id="call_687")).json()
            env.sandbox.clock.advance(timedelta(minutes=35))
            second = (await env.call("book_appointment", args, call_id="call_688")).json()
            assert first["status"] == "booked"
            assert second["status"] == "rejected_duplicate"
            assert second["ok"] is False
            assert second["alternatives"]
            assert len(env.sandbox.bookings) == 1  # Cal.com replayed the first booking (mechanism A)
            async with env.sessionmaker() as session:
                phrases = (await session.execute(select(GuardEvent.verdict))).scalars().all()
            assert "CALL ID MISMATCH" in phrases

    async def test_fifty_concurrent_retries_make_one_booking(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            args = {"service": "Haarschnitt", "start": next_weekday_at(13), "name": "Eva Schmidt"}
            answers = await asyncio.gather(*[env.call("book_appointment", args) for _ in range(50)])
            bodies = [a.json() for a in answers]
            assert all(a.status_code == 200 for a in answers)
            assert {b["status"] for b in bodies} <= {"booked", "in_progress"}
            uids = {b["appointment"]["calcom_booking_uid"] for b in bodies if b["status"] == "booked"}
            assert len(uids) == 1
            assert len(env.sandbox.bookings) == 1
            assert await appointments_with(env, uids.pop()) == 1

    async def test_two_callers_same_slot_one_booked_one_offered_alternatives(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            args = {"service": "Haarschnitt", "start": next_weekday_at(14), "name": "Anna"}
            a, b = await asyncio.gather(
                env.call("book_appointment", args, call_id="call_a", from_number="+491701111111"),
                env.call(
                    "book_appointment", {**args, "name": "Ben"}, call_id="call_b", from_number="+491702222222"
                ),
            )
            statuses = sorted([a.json()["status"], b.json()["status"]])
            assert statuses == ["booked", "slot_unavailable"]
            loser = a.json() if a.json()["status"] == "slot_unavailable" else b.json()
            assert loser["alternatives"]
            assert len(env.sandbox.bookings) == 1

    async def test_check_then_cancel(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            start = next_weekday_at(15)
            day = start[:10]
            avail = (await env.call("check_availability", {"service": "Haarschnitt", "date": day})).json()
            assert avail["status"] == "available"
            assert any(s.startswith(start) for s in avail["slots"])
            booked = (
                await env.call("book_appointment", {"service": "Haarschnitt", "start": start, "name": "Tom"})
            ).json()
            assert booked["status"] == "booked"
            cancelled = (await env.call("cancel_appointment", {})).json()
            assert cancelled["status"] == "cancelled", cancelled
            assert env.sandbox.bookings[0].status == "cancelled"
            again = (await env.call("cancel_appointment", {})).json()
            assert again["status"] == "cancelled"

    async def test_unknown_service_is_a_spoken_not_found(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            r = await env.call(
                "book_appointment", {"service": "Zahnreinigung", "start": next_weekday_at(9), "name": "X"}
            )
            body = r.json()
            assert r.status_code == 200
            assert body["status"] == "not_found"
            assert "Haarschnitt" in body["message"]


def test_round_robin_event_type_is_configured() -> None:
    assert BERATUNG == 2563194
