"""Contract: the client's requests and the sandbox's answers match Cal.com's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from jsonschema import ValidationError

from voicebook.calcom import CalcomClient, CalcomRejected, SlotUnavailable, build_http_client
from voicebook.calcom.sandbox import Sandbox

from .conftest import API_KEY, BASE_URL, INDIVIDUAL, ROUND_ROBIN, SLOT, NoSleep
from .openapi_contract import (
    RecordingTransport,
    check_request,
    check_response,
    component,
    load_spec,
    validate,
)


@pytest.fixture(autouse=True)
def _spec() -> None:
    load_spec()  # the vendored document; a missing file fails, it never skips


@pytest_asyncio.fixture
async def recorded(sandbox: Sandbox) -> AsyncIterator[tuple[CalcomClient, RecordingTransport]]:
    recorder = RecordingTransport(httpx.ASGITransport(app=sandbox.app))
    async with build_http_client(BASE_URL, API_KEY, 5.0, transport=recorder) as http:
        yield CalcomClient(http, retry_sleep=NoSleep()), recorder


@pytest.mark.asyncio
async def test_every_exchange_matches_the_document(
    recorded: tuple[CalcomClient, RecordingTransport], sandbox: Sandbox
) -> None:
    client, recorder = recorded
    await client.get_slots(INDIVIDUAL.id, SLOT, SLOT + timedelta(days=1), "Europe/Berlin")
    await client.get_slots(INDIVIDUAL.id, SLOT, SLOT + timedelta(days=1))
    booking = await client.create_booking(
        event_type_id=ROUND_ROBIN.id,
        start=SLOT,
        name="Jane",
        time_zone="Europe/Berlin",
        email="jane@example.test",
        phone_number="+4915112345678",
        language="de",
        metadata={"call_id": "c1"},
        booking_fields_responses={"notes": "hi"},
    )
    await client.create_booking(  # mechanism A replay, same wire shape
        event_type_id=ROUND_ROBIN.id,
        start=SLOT,
        name="Jim",
        time_zone="UTC",
        email="jane@example.test",
    )
    await client.create_booking(
        event_type_id=INDIVIDUAL.id,
        start=SLOT,
        name="Phone Only",
        time_zone="UTC",
        phone_number="+919876543210",
    )
    await client.get_booking(booking.uid)
    await client.list_bookings(
        attendee_email="jane@example.test",
        event_type_id=ROUND_ROBIN.id,
        after_start=SLOT,
        before_end=SLOT + timedelta(days=1),
        after_created_at=SLOT - timedelta(days=2),
        before_created_at=SLOT,
        status=["upcoming", "cancelled"],
    )
    moved = await client.reschedule_booking(booking.uid, SLOT + timedelta(hours=1), "later")
    await client.cancel_booking(moved.uid, "changed plans")
    await client.reserve_slot(INDIVIDUAL.id, SLOT + timedelta(hours=2), 30)
    # Error envelopes: taken slot (Nest), unknown uid (404), mechanism B (bare 409).
    with pytest.raises(SlotUnavailable):
        await client.create_booking(
            event_type_id=INDIVIDUAL.id, start=SLOT, name="X", time_zone="UTC", email="x@x.test"
        )
    assert await client.get_booking("doesNotExist") is None
    with pytest.raises(CalcomRejected):
        await client.cancel_booking(booking.uid, "again")
    sandbox.faults.inject("skip_availability", "bookings.create")
    with pytest.raises(SlotUnavailable):
        await client.create_booking(
            event_type_id=INDIVIDUAL.id, start=SLOT, name="Y", time_zone="UTC", email="y@x.test"
        )

    seen = set()
    for request, response in recorder.exchanges:
        check_request(request)
        check_response(request, response)
        seen.add((request.method, request.url.path.split("/")[2], response.status_code))
    statuses = {status for _, _, status in seen}
    assert {200, 201, 400, 404, 409} <= statuses
    assert len(recorder.exchanges) == 14


def test_document_slot_item_gap_is_real() -> None:
    """Guard: if Cal.com fixes the document, the special case in the checker can go."""
    op = load_spec()["paths"]["/v2/slots"]["get"]["responses"]["200"]
    default_variant = op["content"]["application/json"]["schema"]["oneOf"][0]
    assert default_variant["additionalProperties"]["items"] == {"type": "string"}


def test_validator_rejects_a_booking_missing_required_fields(sandbox: Sandbox) -> None:
    bad = {"id": 1, "uid": "x"}
    with pytest.raises(ValidationError):
        validate(bad, component("BookingOutput_2024_08_13"))


@pytest.mark.asyncio
async def test_raw_sandbox_booking_is_a_valid_booking_output(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    reply = await http.post(
        "/v2/bookings",
        headers={"cal-api-version": "2024-08-13"},
        json={
            "start": "2030-03-05T09:00:00Z",
            "eventTypeId": INDIVIDUAL.id,
            "attendee": {"name": "A", "email": "a@x.test", "timeZone": "UTC"},
        },
    )
    assert reply.status_code == 201
    validate(reply.json()["data"], component("BookingOutput_2024_08_13"))
    validate(json.loads(reply.content), component("CreateBookingOutput_2024_08_13"))
