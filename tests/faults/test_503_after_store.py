"""Issue 13, case 4 over HTTP: Cal.com stores the booking, then answers 503.

Before the fix the client re-sent the POST (a 503 counted as "nothing happened"), met its own booking as
"busy" and the caller heard ``slot_unavailable``. Now the 503 is an ambiguous outcome, resolved by lookup:
the caller hears ``booked`` for the one booking Cal.com holds, and the POST left exactly once.
"""

from __future__ import annotations

import pytest
from tests.faults.scene import Scene, appointments_with, attempts_of, haarschnitt, service

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_5xx_after_store_is_booked_and_sent_once(
    db_url: str, request: pytest.FixtureRequest, status: int
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("http_error", "bookings.create", phase="after", status=status)
        body = await scene.book(haarschnitt(10))
        assert body["status"] == "booked", body
        (stored,) = env.sandbox.bookings
        assert body["appointment"]["calcom_booking_uid"] == stored.uid  # type: ignore[index]
        assert len(await appointments_with(env.sessionmaker, stored.uid)) == 1
        (attempt,) = await attempts_of(env.sessionmaker)
        assert attempt.tries == 1  # the POST left once; the lookup found it
        assert env.sandbox.faults.active() == []
        again = await scene.book(haarschnitt(10))  # Retell retries the function call
        assert again["status"] == "booked", again
        assert again["appointment"]["calcom_booking_uid"] == stored.uid  # type: ignore[index]
        await scene.check()
