"""The create-booking exchange byte for byte: what goes out, and how a malformed answer is refused.

The client builds the create body without its pydantic models when the values are already plain
(``schemas.create_booking_wire``) and the gateway maps the answer by hand; these tests pin what the
models did: the request httpx would send for the documented body (method, URL, every header in order,
the body's bytes), and the exact error of each kind of malformed 201.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from voicebook.booking.types import Attendee, BookingRequest
from voicebook.calcom import CalcomClient, CalcomGateway, CalcomRejected, OutcomeUnknown, build_http_client

from .conftest import API_KEY, BASE_URL, NoSleep, booking_json, success

START = datetime(2030, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # 09:00Z


class Capture:
    """A Cal.com that answers every create with ``answer`` and keeps the requests it got."""

    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._answer is not None:
            return self._answer
        return httpx.Response(201, json=success(booking_json()))

    def client(self) -> CalcomClient:
        http = build_http_client(BASE_URL, API_KEY, 5.0, transport=httpx.MockTransport(self))
        return CalcomClient(http, retry_sleep=NoSleep())


def minimal_request(body: dict[str, Any]) -> httpx.Request:
    """What ``http.post("/v2/bookings", json=body)`` with the version header sends: the reference."""
    http = build_http_client(BASE_URL, API_KEY, 5.0)
    return http.build_request("POST", "/v2/bookings", json=body, headers={"cal-api-version": "2024-08-13"})


def assert_same_bytes(sent: httpx.Request, body: dict[str, Any]) -> None:
    expected = minimal_request(body)
    assert sent.method == expected.method == "POST"
    assert str(sent.url) == str(expected.url) == "https://api.cal.com/v2/bookings"
    assert sent.headers.raw == expected.headers.raw
    assert sent.content == expected.content
    assert sent.extensions == expected.extensions


FULL_BODY = {
    "start": "2030-03-05T09:00:00Z",
    "eventTypeId": 101,
    "attendee": {
        "name": "Jürgen Groß",
        "timeZone": "Europe/Berlin",
        "email": "juergen@example.test",
        "phoneNumber": "+4915112345678",
        "language": "de",
    },
    "metadata": {"call_id": "call_1", "attempt_id": "att_1"},
    "bookingFieldsResponses": {"notes": 'Fenster "Süd"\n\\ bitte'},
}


@pytest.mark.asyncio
async def test_every_field_goes_out_as_the_models_sent_it() -> None:
    cal = Capture()
    await cal.client().create_booking(
        event_type_id=101,
        start=START,
        name="Jürgen Groß",
        time_zone="Europe/Berlin",
        email="juergen@example.test",
        phone_number="+4915112345678",
        language="de",
        metadata={"call_id": "call_1", "attempt_id": "att_1"},
        booking_fields_responses={"notes": 'Fenster "Süd"\n\\ bitte'},
    )
    (sent,) = cal.requests
    assert_same_bytes(sent, FULL_BODY)
    assert sent.content == (
        b'{"start":"2030-03-05T09:00:00Z","eventTypeId":101,"attendee":{"name":"J\xc3\xbcrgen Gro\xc3\x9f",'
        b'"timeZone":"Europe/Berlin","email":"juergen@example.test","phoneNumber":"+4915112345678",'
        b'"language":"de"},"metadata":{"call_id":"call_1","attempt_id":"att_1"},'
        b'"bookingFieldsResponses":{"notes":"Fenster \\"S\xc3\xbcd\\"\\n\\\\ bitte"}}'
    )
    assert sent.headers["cal-api-version"] == "2024-08-13"
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.asyncio
async def test_absent_optional_fields_are_left_out() -> None:
    cal = Capture()
    start = datetime(2030, 3, 5, 9, 0, 0, 250_000, tzinfo=UTC)  # milliseconds are kept
    await cal.client().create_booking(event_type_id=7, start=start, name="Jane", time_zone="UTC")
    (sent,) = cal.requests
    body = {
        "start": "2030-03-05T09:00:00.250Z",
        "eventTypeId": 7,
        "attendee": {"name": "Jane", "timeZone": "UTC"},
        "metadata": {},
    }
    assert_same_bytes(sent, body)


@pytest.mark.asyncio
async def test_the_gateway_sends_what_it_sent_through_the_models() -> None:
    cal = Capture()
    gateway = CalcomGateway(cal.client())
    with_everything = BookingRequest(
        event_type_id=101,
        start=START,
        attendee=Attendee("Jane", "jane@example.test", "+4915112345678", "Europe/Berlin", "de"),
        metadata={"call_id": "c1", "attempt_id": "a1"},
        notes="first visit",
    )
    phone_only = BookingRequest(
        event_type_id=101,
        start=START,
        attendee=Attendee("P", "", "+4915100000009"),
    )
    await gateway.create_booking(with_everything)
    await gateway.create_booking(phone_only)
    first, second = cal.requests
    assert_same_bytes(
        first,
        {
            "start": "2030-03-05T09:00:00Z",
            "eventTypeId": 101,
            "attendee": {
                "name": "Jane",
                "timeZone": "Europe/Berlin",
                "email": "jane@example.test",
                "phoneNumber": "+4915112345678",
                "language": "de",
            },
            "metadata": {"call_id": "c1", "attempt_id": "a1"},
            "bookingFieldsResponses": {"notes": "first visit"},
        },
    )
    assert_same_bytes(
        second,
        {
            "start": "2030-03-05T09:00:00Z",
            "eventTypeId": 101,
            "attendee": {"name": "P", "timeZone": "UTC", "phoneNumber": "+4915100000009", "language": "en"},
            "metadata": {},
        },
    )


@pytest.mark.asyncio
async def test_values_the_models_convert_are_sent_converted() -> None:
    """A ``bool`` id, a ``str`` subclass, numbers among the responses: what pydantic made of them."""

    class Name(str):
        pass

    cal = Capture()
    await cal.client().create_booking(
        event_type_id=True,
        start=START,
        name=Name("Jane"),
        time_zone="UTC",
        booking_fields_responses={"count": 2, "ratio": 0.5, "when": START, "none": None},
    )
    (sent,) = cal.requests
    assert_same_bytes(
        sent,
        {
            "start": "2030-03-05T09:00:00Z",
            "eventTypeId": 1,
            "attendee": {"name": "Jane", "timeZone": "UTC"},
            "metadata": {},
            "bookingFieldsResponses": {
                "count": 2,
                "ratio": 0.5,
                "when": "2030-03-05T10:00:00+01:00",
                "none": None,
            },
        },
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metadata": {"k" * 41: "v"}}, f"metadata: Value error, metadata key longer than 40: {'k' * 41!r}"),
        ({"metadata": {"k": "v" * 501}}, "metadata: Value error, metadata value of 'k' exceeds 500"),
        (
            {"metadata": {f"k{i}": "v" for i in range(51)}},
            "metadata: Value error, metadata has more than 50 keys",
        ),
        ({"metadata": {"k": 1}}, "metadata.k: Input should be a valid string"),
        # The attendee is validated first, on its own: its errors alone, named without ``attendee.``.
        ({"name": None}, "name: Input should be a valid string"),
        ({"email": 5, "metadata": {"k": 1}}, "email: Input should be a valid string"),
        (
            {"event_type_id": "abc"},
            "event_type_id: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
@pytest.mark.asyncio
async def test_values_the_models_refuse_are_refused_before_sending(
    kwargs: dict[str, Any], message: str
) -> None:
    cal = Capture()
    values: dict[str, Any] = {"event_type_id": 1, "start": START, "name": "J", "time_zone": "UTC", **kwargs}
    with pytest.raises(CalcomRejected) as info:
        await cal.client().create_booking(**values)
    assert (info.value.status, info.value.code, info.value.detail) == (400, "ClientValidation", message)
    assert cal.requests == []


def _without(key: str) -> dict[str, Any]:
    data = booking_json()
    del data[key]
    return success(data)


MALFORMED = [
    pytest.param(_without("uid"), "data.uid: Field required", id="no-uid"),
    pytest.param(
        success(booking_json(start="2030-03-05T09:00:00")),
        "data.start: Value error, timestamp without a UTC offset",
        id="naive-start",
    ),
    pytest.param(
        success(booking_json(attendees=[{"name": "J"}])),
        "data.attendees.0.email: Field required",
        id="attendee-without-email",
    ),
    pytest.param(
        success(booking_json(hosts=[{"name": "H"}])), "data.hosts.0.id: Field required", id="host-without-id"
    ),
    pytest.param(
        {"status": "error", "data": booking_json()},
        "status: Input should be 'success'",
        id="not-success",
    ),
    pytest.param({"status": "success"}, "data: Field required", id="no-data"),
    pytest.param(success([booking_json()]), "data: Input should be an object", id="a-list"),
    pytest.param(
        success(booking_json(id="x")),
        "data.id: Input should be a valid integer, unable to parse string as an integer",
        id="text-id",
    ),
]


@pytest.mark.parametrize(("body", "problem"), MALFORMED)
@pytest.mark.asyncio
async def test_a_malformed_201_is_outcome_unknown_with_the_same_message(body: Any, problem: str) -> None:
    cal = Capture(httpx.Response(201, json=body))
    gateway = CalcomGateway(cal.client())
    request = BookingRequest(event_type_id=101, start=START, attendee=Attendee("J", "j@example.test"))
    with pytest.raises(OutcomeUnknown) as info:
        await gateway.create_booking(request)
    assert str(info.value) == f"Cal.com bookings.create: malformed response: {problem}"
    assert len(cal.requests) == 1


@pytest.mark.asyncio
async def test_a_201_that_is_not_json_is_outcome_unknown() -> None:
    cal = Capture(httpx.Response(201, text="<html>ok</html>"))
    with pytest.raises(OutcomeUnknown) as info:
        await CalcomGateway(cal.client()).create_booking(
            BookingRequest(event_type_id=101, start=START, attendee=Attendee("J", "j@example.test"))
        )
    assert str(info.value).startswith("Cal.com bookings.create: malformed response: body: Invalid JSON")
