"""Speaking Cal.com precisely (issue 16): pinned versions, no bypass fields, fallback detection, sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx

from voicebook import metrics
from voicebook.booking.errors import CalendarError
from voicebook.calcom import CalcomClient, build_http_client
from voicebook.calcom.eventtypes import ServiceLine, compare, tenants_entry
from voicebook.calcom.sandbox import Sandbox, SandboxEventType
from voicebook.calcom.sandbox.accounts import AccountAccess, SandboxAccounts
from voicebook.calcom.versions import API_VERSIONS, BYPASS_FIELDS, legacy_shape, without_bypass

from .conftest import API_KEY, BASE_URL, NoSleep, booking_json, success


def _client() -> CalcomClient:
    return CalcomClient(build_http_client(BASE_URL, API_KEY, 5.0), retry_sleep=NoSleep())


def test_bypass_fields_are_stripped_and_the_table_pins_every_endpoint() -> None:
    body = {"start": "x", "allowConflicts": True, "skipBookingLimits": True, "allowBookingOutOfBounds": True}
    assert without_bypass(body) == {"start": "x"}
    for endpoint in ("bookings.create", "bookings.list", "slots.get", "event_types.list"):
        assert API_VERSIONS[endpoint]


@pytest.mark.asyncio
async def test_create_never_sends_bypass_fields_and_uses_the_pinned_version() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(return_value=httpx.Response(201, json=success(booking_json())))
        await _client().create_booking(
            event_type_id=101,
            start=datetime(2030, 3, 5, 9, 0, tzinfo=UTC),
            name="Jane",
            time_zone="Europe/Berlin",
            email="jane@example.test",
        )
    sent = route.calls.last.request
    assert not BYPASS_FIELDS & json.loads(sent.content).keys()
    assert sent.headers["cal-api-version"] == API_VERSIONS["bookings.create"]


@pytest.mark.asyncio
async def test_legacy_controller_answer_is_detected_logged_and_counted() -> None:
    legacy = {"status": "success", "data": {"bookings": [{"id": 1, "startTime": "2030-03-05T09:00:00Z"}]}}
    assert legacy_shape("bookings.list", json.dumps(legacy).encode())
    counter = metrics.CALCOM_VERSION_FALLBACK.labels(endpoint="bookings.list")
    before = counter._value.get()
    with respx.mock(base_url=BASE_URL) as mock:
        mock.get("/v2/bookings").mock(return_value=httpx.Response(200, json=legacy))
        with pytest.raises(CalendarError):
            await _client().list_bookings(attendee_email="a@b.test")
    assert counter._value.get() == before + 1


@pytest.mark.asyncio
async def test_event_types_listed_from_the_account_and_the_team_then_compared() -> None:
    accounts = SandboxAccounts()
    sandbox = Sandbox()
    sandbox.add_event_type(
        SandboxEventType(id=5001, slug="haarschnitt", length_minutes=30, title="Haarschnitt")
    )
    sandbox.add_event_type(SandboxEventType(id=5002, slug="farbe", length_minutes=45, title="Farbe"))
    sandbox.add_event_type(SandboxEventType(id=5009, slug="massage", length_minutes=60, title="Massage"))
    accounts.add("https://acme.cal.test", sandbox, AccountAccess(api_key="cal_live_acme_key_000001"))
    http = build_http_client(
        "https://acme.cal.test", "cal_live_acme_key_000001", 5.0, transport=accounts.transport
    )
    try:
        client = CalcomClient(http)
        listed = await client.list_event_types()
        team = await client.list_event_types(team_id=77)
    finally:
        await http.aclose()
    assert [e.id for e in listed] == [5001, 5002, 5009] == [e.id for e in team]
    report = compare(
        [ServiceLine("Haarschnitt", 5001, 30), ServiceLine("Farbe", 5002, 30), ServiceLine("Weg", 5003, 30)],
        listed,
    )
    assert [s.name for s in report.ok] == ["Haarschnitt"]
    assert [s.event_type_id for s in report.missing] == [5003]
    assert [(s.name, length) for s, length in report.wrong_length] == [("Farbe", 45)]
    assert [e.id for e in report.unused] == [5009]
    assert report.problems == 2
    entry = tenants_entry("acme", report.unused)
    assert "event_type_id: 5009" in entry
    assert "duration_minutes: 60" in entry
    assert any("MISSING" in line for line in report.lines("acme"))
