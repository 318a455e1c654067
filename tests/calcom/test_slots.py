"""Slots come from working hours, the zone, the length and existing bookings — not canned data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from voicebook.calcom import CalcomClient
from voicebook.calcom.sandbox import SandboxEventType, SandboxHost, event_type_from_service
from voicebook.calcom.sandbox.models import parse_days
from voicebook.calcom.sandbox.slots import candidate_starts

from .conftest import INDIVIDUAL, NOW, ROUND_ROBIN, SLOT

TUESDAY = datetime(2030, 3, 5, tzinfo=UTC)


@pytest.mark.asyncio
async def test_working_hours_in_berlin(client: CalcomClient) -> None:
    slots = await client.get_slots(INDIVIDUAL.id, TUESDAY, TUESDAY + timedelta(days=1))
    starts = [s.start.astimezone(UTC) for s in slots]
    # 09:00-17:00 CET = 08:00-16:00 UTC, 30-minute steps, last start 16:30 CET.
    assert starts[0] == TUESDAY.replace(hour=8)
    assert starts[-1] == TUESDAY.replace(hour=15, minute=30)
    assert len(starts) == 16


@pytest.mark.asyncio
async def test_booked_slot_disappears_for_individual_but_not_round_robin(
    client: CalcomClient,
) -> None:
    for et in (INDIVIDUAL, ROUND_ROBIN):
        await client.create_booking(
            event_type_id=et.id, start=SLOT, name="J", time_zone="UTC", email="j@x.test"
        )
    individual = [s.start for s in await client.get_slots(INDIVIDUAL.id, SLOT, SLOT + timedelta(hours=1))]
    rr = [s.start for s in await client.get_slots(ROUND_ROBIN.id, SLOT, SLOT + timedelta(hours=1))]
    assert SLOT not in individual
    assert SLOT + timedelta(minutes=30) in individual
    assert SLOT in rr  # one host of two is still free


@pytest.mark.asyncio
async def test_past_slots_are_excluded(client: CalcomClient) -> None:
    monday = NOW.replace(hour=0)
    slots = await client.get_slots(INDIVIDUAL.id, monday, monday + timedelta(days=1))
    assert slots
    assert all(s.start >= NOW for s in slots)


@pytest.mark.asyncio
async def test_wire_shape_is_grouped_by_local_date_in_the_requested_zone(
    http: httpx.AsyncClient,
) -> None:
    reply = await http.get(
        "/v2/slots",
        params={
            "eventTypeId": "101",
            "start": "2030-03-05",
            "end": "2030-03-05",
            "timeZone": "America/New_York",
        },
        headers={"cal-api-version": "2024-09-04"},
    )
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert list(data) == ["2030-03-05"]
    assert data["2030-03-05"][0] == {"start": "2030-03-05T03:00:00.000-05:00"}
    utc = await http.get(
        "/v2/slots",
        params={"eventTypeId": "101", "start": "2030-03-05T08:00:00Z", "end": "2030-03-05T09:00:00Z"},
        headers={"cal-api-version": "2024-09-04"},
    )
    assert utc.json()["data"] == {
        "2030-03-05": [{"start": "2030-03-05T08:00:00.000Z"}, {"start": "2030-03-05T08:30:00.000Z"}]
    }


def test_dst_switch_keeps_local_working_hours() -> None:
    et = SandboxEventType(id=1, slug="x", length_minutes=60, working_hours=[("Sun-Mon", "09:00", "10:00")])
    # Europe/Berlin switches to CEST on 2030-03-31 (Sunday).
    start = datetime(2030, 3, 30, tzinfo=UTC)
    starts = list(candidate_starts(et, start, start + timedelta(days=3)))
    assert starts == [datetime(2030, 3, 31, 7, tzinfo=UTC), datetime(2030, 4, 1, 7, tzinfo=UTC)]


def test_day_specs() -> None:
    assert parse_days("Mon-Fri") == frozenset(range(5))
    assert parse_days("mon,wed,sat") == frozenset({0, 2, 5})
    assert parse_days("Sat-Mon") == frozenset({5, 6, 0})
    assert parse_days([1, 2]) == frozenset({1, 2})


def test_event_type_from_service() -> None:
    rr = event_type_from_service(7, "Colour and Cut", 90, True, "Europe/Vienna")
    assert rr.scheduling_type == "roundRobin"
    assert len(rr.hosts) == 2
    assert rr.slug == "colour-and-cut"
    assert rr.windows[0].days == frozenset(range(6))
    single = event_type_from_service(8, "Trim", 30, False, "Europe/Vienna")
    assert len(single.hosts) == 1
    assert isinstance(single.hosts[0], SandboxHost)
