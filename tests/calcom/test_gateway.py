"""CalcomGateway against the sandbox: domain values in, domain values out, all UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import respx

from voicebook.booking import errors as domain
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.types import Attendee, BookingQuery, BookingRequest
from voicebook.calcom import CalcomClient, CalcomGateway, build_http_client
from voicebook.calcom.gateway import to_calendar_booking
from voicebook.calcom.sandbox import Sandbox
from voicebook.calcom.schemas import BookingOutput

from .conftest import API_KEY, BASE_URL, INDIVIDUAL, NOW, ROUND_ROBIN, SLOT, NoSleep, booking_json

JANE = Attendee(
    name="Jane", email="jane@example.test", phone="+4915112345678", time_zone="Europe/Berlin", language="de"
)


@pytest.fixture
def gateway(client: CalcomClient) -> CalcomGateway:
    return CalcomGateway(client)


def test_implements_the_port(gateway: CalcomGateway) -> None:
    port: CalendarGateway = gateway  # mypy checks that the adapter satisfies the port
    assert port is gateway
    assert API_KEY not in repr(gateway)


@pytest.mark.asyncio
async def test_create_get_find_cancel_reschedule(gateway: CalcomGateway) -> None:
    request = BookingRequest(
        event_type_id=ROUND_ROBIN.id,
        start=SLOT,
        attendee=JANE,
        metadata={"call_id": "c1", "attempt_id": "a1"},
        notes="first visit",
    )
    booking = await gateway.create_booking(request)
    assert booking.start == SLOT
    assert booking.start.tzinfo is not None
    assert booking.start.utcoffset() == timedelta(0)
    assert booking.end == SLOT + timedelta(minutes=30)
    assert booking.created_at == NOW
    assert booking.event_type_id == ROUND_ROBIN.id
    assert booking.metadata == {"call_id": "c1", "attempt_id": "a1"}
    assert booking.attendees == (JANE,)
    assert booking.status == "accepted"

    assert await gateway.get_booking(booking.uid) == booking
    assert await gateway.get_booking("unknownUid") is None

    query = BookingQuery(
        attendee_email=JANE.email,
        event_type_id=ROUND_ROBIN.id,
        start_from=SLOT - timedelta(minutes=5),
        start_to=SLOT + timedelta(minutes=5),
    )
    assert [b.uid for b in await gateway.find_bookings(query)] == [booking.uid]
    elsewhere = BookingQuery(
        attendee_email=JANE.email, event_type_id=INDIVIDUAL.id, start_from=SLOT, start_to=SLOT
    )
    assert await gateway.find_bookings(elsewhere) == []

    moved = await gateway.reschedule_booking(booking.uid, SLOT + timedelta(hours=1), "later")
    assert moved.rescheduled_from_uid == booking.uid
    assert moved.metadata == booking.metadata
    cancelled = await gateway.cancel_booking(moved.uid, "done")
    assert cancelled.status == "cancelled"


@pytest.mark.asyncio
async def test_find_slots_is_utc_and_half_open(gateway: CalcomGateway) -> None:
    berlin = timezone(timedelta(hours=1))
    start = datetime(2030, 3, 5, 9, 0, tzinfo=berlin)
    slots = await gateway.find_slots(INDIVIDUAL.id, start, start + timedelta(hours=1))
    assert slots == [datetime(2030, 3, 5, 8, 0, tzinfo=UTC), datetime(2030, 3, 5, 8, 30, tzinfo=UTC)]
    assert all(s.tzinfo == UTC for s in slots)


@pytest.mark.asyncio
async def test_phone_only_caller_dedupes_per_phone(gateway: CalcomGateway, sandbox: Sandbox) -> None:
    caller = Attendee(name="P", email="", phone="+4915100000009")
    booking = await gateway.create_booking(
        BookingRequest(event_type_id=ROUND_ROBIN.id, start=SLOT, attendee=caller)
    )
    assert booking.attendee_emails == ("4915100000009@sms.cal.com",)


@pytest.mark.asyncio
async def test_find_bookings_raises_instead_of_a_partial_list(sandbox: Sandbox) -> None:
    http = build_http_client(BASE_URL, API_KEY, 5.0, transport=httpx.ASGITransport(app=sandbox.app))
    gateway = CalcomGateway(CalcomClient(http, retry_sleep=NoSleep()))
    sandbox.faults.inject("http_error", "bookings.list", status=500)
    query = BookingQuery(attendee_email="x@x.test", event_type_id=1, start_from=SLOT, start_to=SLOT)
    with pytest.raises(domain.CalendarUnavailable):
        await gateway.find_bookings(query)
    await http.aclose()


@pytest.mark.asyncio
async def test_second_page_failure_is_not_a_partial_answer() -> None:
    first = {"status": "success", "data": [booking_json()], "pagination": {"hasNextPage": True}}
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.get("/v2/bookings").mock(
            side_effect=[httpx.Response(200, json=first), httpx.ReadTimeout("slow second page")]
        )
        gateway = CalcomGateway(
            CalcomClient(build_http_client(BASE_URL, API_KEY, 5.0), retry_sleep=NoSleep())
        )
        query = BookingQuery(
            attendee_email="jane@example.test", event_type_id=101, start_from=SLOT, start_to=SLOT
        )
        with pytest.raises(domain.CalendarUnavailable):
            await gateway.find_bookings(query)


def test_metadata_values_become_strings() -> None:
    output = BookingOutput.model_validate(
        booking_json(metadata={"call_id": "c1", "n": 3, "flag": True, "none": None})
    )
    booking = to_calendar_booking(output)
    assert booking.metadata == {"call_id": "c1", "n": "3", "flag": "true"}
    assert booking.created_at.tzinfo == UTC
