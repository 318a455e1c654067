"""Daylight-saving Sundays in Europe/Berlin book the wall time the caller said."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.e2e.harness import HAARSCHNITT, running_service

# The last Sundays of March and October 2027: clocks go forward (02:00 → 03:00) and back (03:00 → 02:00).
CASES = [
    ("2027-03-28T10:00", "2027-03-28T10:00:00+02:00", "2027-03-28T08:00:00Z"),
    ("2027-03-28T03:00", "2027-03-28T03:00:00+02:00", "2027-03-28T01:00:00Z"),
    ("2027-10-31T10:00", "2027-10-31T10:00:00+01:00", "2027-10-31T09:00:00Z"),
    ("2027-10-31T01:30", "2027-10-31T01:30:00+02:00", "2027-10-30T23:30:00Z"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("said", "answered", "sent_utc"), CASES, ids=[c[0] for c in CASES])
async def test_books_the_wall_time_said(db_url: str, said: str, answered: str, sent_utc: str) -> None:
    async with running_service(db_url) as env:
        every_day = replace(
            env.sandbox.engine.event_type(HAARSCHNITT), working_hours=(("Mon-Sun", "00:00", "23:59"),)
        )
        env.sandbox.add_event_type(every_day)
        body = (
            await env.call("book_appointment", {"service": "Haarschnitt", "start": said, "name": "Lena"})
        ).json()
        assert body["status"] == "booked", body
        assert body["appointment"]["start"] == answered
        stored = env.sandbox.bookings[0]
        assert stored.start.strftime("%Y-%m-%dT%H:%M:%SZ") == sent_utc


@pytest.mark.asyncio
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_wall_time_in_the_spring_gap_is_refused_in_words(db_url: str) -> None:
    async with running_service(db_url) as env:
        body = (
            await env.call(
                "book_appointment", {"service": "Haarschnitt", "start": "2027-03-28T02:30", "name": "Lena"}
            )
        ).json()
        assert body["status"] == "invalid_input"
        assert body["ok"] is False
        assert env.sandbox.bookings == []
