"""Every documented Cal.com failure maps to the right exception; retries follow the one policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from voicebook.booking import errors as domain
from voicebook.calcom import (
    CalcomClient,
    CalcomError,
    CalcomRejected,
    CalcomUnavailable,
    OutcomeUnknown,
    RateLimited,
    SlotUnavailable,
    build_http_client,
)
from voicebook.calcom.errors import parse_error_body, reset_seconds

from .conftest import API_KEY, BASE_URL, NoSleep, booking_json, success

START = datetime(2030, 3, 5, 9, 0, tzinfo=UTC)


def nest(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "status": "error",
        "timestamp": "2030-03-04T07:00:00.000Z",
        "path": "/v2/bookings",
        "error": {"code": code, "message": message, "details": {"message": message, "statusCode": status}},
    }


def _client(sleep: NoSleep | None = None) -> CalcomClient:
    return CalcomClient(build_http_client(BASE_URL, API_KEY, 5.0), retry_sleep=sleep or NoSleep())


async def _create(client: CalcomClient) -> object:
    return await client.create_booking(
        event_type_id=101, start=START, name="J", time_zone="UTC", email="j@example.test"
    )


CREATE_CASES = [
    (
        400,
        nest(400, "BadRequestException", "User either already has booking at this time or is not available"),
        SlotUnavailable,
    ),
    (
        400,
        nest(
            400,
            "BadRequestException",
            "One of the hosts either already has booking at this time or is not available",
        ),
        SlotUnavailable,
    ),
    (400, nest(400, "BadRequestException", "Attempting to book a meeting in the past."), SlotUnavailable),
    (409, {"statusCode": 409, "message": "booking_conflict_error"}, SlotUnavailable),
    (409, nest(409, "ConflictException", "No more seats left at this seated booking."), SlotUnavailable),
    (500, {"statusCode": 500, "message": "booking_conflict"}, SlotUnavailable),
    (
        409,
        {"status": "error", "error": {"code": "CONFLICT", "message": "Unique constraint"}},
        SlotUnavailable,
    ),
    (
        400,
        nest(400, "BadRequestException", "attendee.timeZone must be a valid IANA time zone"),
        CalcomRejected,
    ),
    (404, nest(404, "NotFoundException", "Event type with id 999 not found."), CalcomRejected),
    (401, nest(401, "UnauthorizedException", "Invalid API key"), CalcomRejected),
    (422, nest(422, "UnprocessableEntityException", "no hosts"), CalcomRejected),
    (500, nest(500, "InternalServerErrorException", "Internal server error"), OutcomeUnknown),
    (502, "<html>bad gateway</html>", OutcomeUnknown),
    # A 503 is ambiguous too: an edge or proxy can answer it while Cal.com goes on (issue 13, case 4).
    (503, nest(503, "ServiceUnavailableException", "Service Unavailable"), OutcomeUnknown),
    (503, "", OutcomeUnknown),
    (504, "", OutcomeUnknown),
]


@pytest.mark.parametrize(("status", "body", "expected"), CREATE_CASES)
@pytest.mark.asyncio
async def test_create_error_mapping(status: int, body: Any, expected: type[Exception]) -> None:
    response = (
        httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    )
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(return_value=response)
        with pytest.raises(expected) as info:
            await _create(_client())
    assert route.call_count == 1
    assert isinstance(info.value, CalcomError)
    assert API_KEY not in str(info.value)


def test_rejected_carries_status_code_and_message() -> None:
    error = CalcomRejected(404, "NotFoundException", "Event type with id 9 not found.")
    assert (error.status, error.code, error.detail) == (
        404,
        "NotFoundException",
        "Event type with id 9 not found.",
    )


def test_named_errors_are_domain_errors() -> None:
    assert issubclass(SlotUnavailable, domain.SlotUnavailable)
    assert issubclass(CalcomRejected, domain.CalendarRejected)
    assert issubclass(CalcomUnavailable, domain.CalendarUnavailable)
    assert issubclass(RateLimited, domain.RateLimited)
    assert issubclass(OutcomeUnknown, domain.OutcomeUnknown)
    assert RateLimited("x", 3).status_code == 429
    assert SlotUnavailable("x").status_code == 409


async def _cancel(client: CalcomClient) -> object:
    return await client.cancel_booking("8Fxv4pCqnb1Jva1w9wn5wX", "caller asked")


async def _reschedule(client: CalcomClient) -> object:
    return await client.reschedule_booking("8Fxv4pCqnb1Jva1w9wn5wX", START, "caller asked")


WRITES = [
    pytest.param("/v2/bookings", _create, id="create"),
    pytest.param("/v2/bookings/8Fxv4pCqnb1Jva1w9wn5wX/cancel", _cancel, id="cancel"),
    pytest.param("/v2/bookings/8Fxv4pCqnb1Jva1w9wn5wX/reschedule", _reschedule, id="reschedule"),
]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(("path", "send"), WRITES)
@pytest.mark.asyncio
async def test_5xx_on_a_write_is_outcome_unknown_and_never_resent(status: int, path: str, send: Any) -> None:
    """Case 4: Cal.com may have stored the change behind a 5xx; a re-send would meet our own booking."""
    sleep = NoSleep()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post(path).mock(
            side_effect=[
                httpx.Response(status, json=nest(status, "ServiceUnavailableException", "down")),
                httpx.Response(201, json=success(booking_json())),
            ]
        )
        with pytest.raises(OutcomeUnknown):
            await send(_client(sleep))
    assert route.call_count == 1
    assert sleep.calls == []


@pytest.mark.parametrize(("path", "send"), WRITES)
@pytest.mark.asyncio
async def test_nothing_sent_and_429_on_a_write_are_retried(path: str, send: Any) -> None:
    """Only failures before the request left, and Cal.com's throttler, are safe to resend blind."""
    sleep = NoSleep()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post(path).mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.Response(429, json=THROTTLED, headers={"X-RateLimit-Reset-Default": "1"}),
                httpx.Response(201, json=success(booking_json())),
            ]
        )
        await send(_client(sleep))
    assert route.call_count == 3
    assert sleep.calls == [0.2, 1.0]


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ReadError("reset"), httpx.RemoteProtocolError("gone")]
)
@pytest.mark.parametrize(("path", "send"), WRITES)
@pytest.mark.asyncio
async def test_failure_after_sending_a_write_is_outcome_unknown(exc: Exception, path: str, send: Any) -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post(path).mock(side_effect=exc)
        with pytest.raises(OutcomeUnknown):
            await send(_client())
    assert route.call_count == 1


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.asyncio
async def test_5xx_on_a_read_may_be_retried(status: int) -> None:
    """A GET changes nothing, so a gateway hiccup is worth another try within the budget."""
    sleep = NoSleep()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.get("/v2/bookings/x").mock(
            side_effect=[httpx.Response(status, text=""), httpx.Response(200, json=success(booking_json()))]
        )
        assert await _client(sleep).get_booking("x") is not None
    assert route.call_count == 2
    assert sleep.calls == [0.2]


@pytest.mark.asyncio
async def test_5xx_on_a_read_is_unavailable() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.get("/v2/bookings/x").mock(return_value=httpx.Response(500, json={}))
        with pytest.raises(CalcomUnavailable):
            await _client().get_booking("x")


@pytest.mark.asyncio
async def test_connect_error_is_retried_then_succeeds() -> None:
    sleep = NoSleep()
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.ConnectTimeout("slow connect"),
                httpx.Response(201, json=success(booking_json())),
            ]
        )
        await _create(_client(sleep))
    assert route.call_count == 3
    assert sleep.calls == [0.2, 0.4]


@pytest.mark.asyncio
async def test_persistent_connect_error_is_unavailable() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(CalcomUnavailable) as info:
            await _create(_client())
    assert not isinstance(info.value, OutcomeUnknown)
    assert route.call_count == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
    ],
)
@pytest.mark.asyncio
async def test_ambiguous_create_is_outcome_unknown_and_sent_once(exc: Exception) -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(side_effect=exc)
        with pytest.raises(OutcomeUnknown):
            await _create(_client())
    assert route.call_count == 1


@pytest.mark.asyncio
async def test_read_timeout_on_a_get_is_unavailable() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.get("/v2/bookings").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(CalcomUnavailable):
            await _client().list_bookings(attendee_email="j@example.test")
    assert route.call_count == 1


THROTTLED = nest(
    429, "ThrottlerException", "CustomThrottlerGuard - Too many requests. Please try again later."
)


@pytest.mark.asyncio
async def test_429_is_retried_honouring_the_reset_header() -> None:
    sleep = NoSleep()
    limited = httpx.Response(
        429,
        json=THROTTLED,
        headers={
            "X-RateLimit-Limit-Default": "120",
            "X-RateLimit-Remaining-Default": "0",
            "X-RateLimit-Reset-Default": "1",
        },
    )
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(
            side_effect=[limited, httpx.Response(201, json=success(booking_json()))]
        )
        await _create(_client(sleep))
    assert route.call_count == 2
    assert sleep.calls == [1.0]


@pytest.mark.asyncio
async def test_429_that_persists_raises_rate_limited() -> None:
    sleep = NoSleep()
    limited = httpx.Response(429, json=THROTTLED, headers={"X-RateLimit-Reset-Default": "0.5"})
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(return_value=limited)
        with pytest.raises(RateLimited) as info:
            await _create(_client(sleep))
    assert route.call_count == 3
    assert info.value.reset_seconds == 0.5
    assert sleep.calls == [0.5, 0.5]


@pytest.mark.asyncio
async def test_429_with_a_long_reset_is_not_waited_for() -> None:
    sleep = NoSleep()
    limited = httpx.Response(429, json=THROTTLED, headers={"Retry-After": "30"})
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.get("/v2/slots").mock(return_value=limited)
        with pytest.raises(RateLimited) as info:
            await _client(sleep).get_slots(101, START, START)
    assert route.call_count == 1
    assert info.value.reset_seconds == 30
    assert sleep.calls == []


@pytest.mark.asyncio
async def test_malformed_success_body() -> None:
    broken = success(booking_json())
    del broken["data"]["uid"]
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.post("/v2/bookings").mock(return_value=httpx.Response(201, json=broken))
        mock.get("/v2/bookings/x").mock(return_value=httpx.Response(200, text="not json"))
        with pytest.raises(OutcomeUnknown, match="malformed"):
            await _create(_client())
        with pytest.raises(CalcomUnavailable, match="malformed"):
            await _client().get_booking("x")


@pytest.mark.asyncio
async def test_api_key_never_leaks() -> None:
    client = _client()
    assert API_KEY not in repr(client)
    assert API_KEY not in str(client)
    echo = nest(401, "UnauthorizedException", f"Invalid API key Bearer {API_KEY}")
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.post("/v2/bookings").mock(return_value=httpx.Response(401, json=echo))
        mock.get("/v2/bookings/x").mock(side_effect=httpx.ConnectError(f"refused {API_KEY}"))
        with pytest.raises(CalcomRejected) as rejected:
            await _create(client)
        with pytest.raises(CalcomUnavailable) as unavailable:
            await client.get_booking("x")
    for error in (rejected.value, unavailable.value):
        assert API_KEY not in str(error)
        assert API_KEY not in repr(error)
        assert API_KEY not in repr(error.args)
    assert API_KEY not in rejected.value.detail


def test_error_body_shapes() -> None:
    assert (
        parse_error_body(409, b'{"statusCode":409,"message":"booking_conflict_error"}').message
        == "booking_conflict_error"
    )
    validation = parse_error_body(
        400, b'{"statusCode":400,"message":["a bad","b bad"],"error":"Bad Request"}'
    )
    assert (validation.code, validation.message) == ("Bad Request", "a bad; b bad")
    assert parse_error_body(502, b"").message == "Bad Gateway"


def test_reset_seconds_parsing() -> None:
    assert (
        reset_seconds(httpx.Headers({"X-RateLimit-Reset-Default": "12", "X-RateLimit-Reset-Short": "3"}))
        == 12
    )
    assert reset_seconds(httpx.Headers({"Retry-After": "7"})) == 7
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert reset_seconds(httpx.Headers({"Retry-After": "Tue, 01 Jan 2030 00:00:05 GMT"}), now) == 5
    assert reset_seconds(httpx.Headers({})) is None
