"""Issue 13, case 8 over HTTP: a start at the end of the calendar is a clear sentence, not an overflow.

Before: ``9999-12-30T10:00`` was booked and ``9999-12-31T23:30`` overflowed — the caller heard "calendar
not reachable", the attempt stayed ``unknown`` and every reconciler pass logged a traceback. The service's
own window (``max_days_ahead``) is the flow's check; this is the horizon no date may cross at all.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.e2e.harness import running_service

from voicebook.db.models import BookingAttempt

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("start", ["9999-12-30T10:00", "9999-12-31T23:30", "9999-12-31T23:59-14:00"])
async def test_a_start_at_the_end_of_the_calendar_is_refused_with_a_sentence(db_url: str, start: str) -> None:
    async with running_service(db_url) as env:
        args = {"service": "Haarschnitt", "start": start, "name": "Anna Weit"}
        answer = await env.call("book_appointment", args)
        assert answer.status_code == 200
        body = answer.json()
        assert (body["ok"], body["status"]) == (False, "invalid_input")
        assert body["message"] == "Das Datum liegt zu weit in der Zukunft."
        moved = await env.call("reschedule_appointment", {"new_start": start})
        assert moved.json()["message"] == "Das Datum liegt zu weit in der Zukunft."
        asked = await env.call("check_availability", {"service": "Haarschnitt", "date": start[:10]})
        assert asked.json()["message"] == "Das Datum liegt zu weit in der Zukunft."
        assert env.sandbox.bookings == []
        async with env.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(BookingAttempt))).scalar_one() == 0
