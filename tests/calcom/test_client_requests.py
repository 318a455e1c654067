"""The exact requests the client sends, and how it reads the answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import respx

from voicebook.calcom import CalcomClient, CalcomRejected, build_http_client

from .conftest import API_KEY, BASE_URL, NoSleep, booking_json, success

START = datetime(2030, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # 09:00Z


def _client(**kw: object) -> CalcomClient:
    return CalcomClient(build_http_client(BASE_URL, API_KEY, 5.0), retry_sleep=NoSleep(), **kw)  # type: ignore[arg-type]


def _headers_ok(request: httpx.Request, version: str) -> None:
    assert request.headers["cal-api-version"] == version
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.asyncio
async def test_create_booking_request() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/v2/bookings").mock(return_value=httpx.Response(201, json=success(booking_json())))
        booking = await _client().create_booking(
            event_type_id=101,
            start=START,
            name="Jane Caller",
            time_zone="Europe/Berlin",
            email="jane@example.test",
            phone_number="+4915112345678",
            language="de",
            metadata={"call_id": "call_1"},
            booking_fields_responses={"notes": "window seat"},
        )
    request = route.calls.last.request
    _headers_ok(request, "2024-08-13")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "start": "2030-03-05T09:00:00Z",
        "eventTypeId": 101,
        "attendee": {
            "name": "Jane Caller",
            "timeZone": "Europe/Berlin",
            "email": "jane@example.test",
            "phoneNumber": "+4915112345678",
            "language": "de",
        },
        "metadata": {"call_id": "call_1"},
        "bookingFieldsResponses": {"notes": "window seat"},
    }
    assert booking.uid == "8Fxv4pCqnb1Jva1w9wn5wX"
    assert booking.start == datetime(2030, 3, 5, 9, 0, tzinfo=UTC)
    assert booking.resolved_event_type_id == 101
    assert route.call_count == 1


@pytest.mark.asyncio
async def test_get_slots_request_and_both_item_shapes() -> None:
    body = success(
        {"2030-03-05": [{"start": "2030-03-05T10:00:00.000+01:00"}, "2030-03-05T10:30:00.000+01:00"]}
    )
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.get("/v2/slots").mock(return_value=httpx.Response(200, json=body))
        slots = await _client().get_slots(101, START, START + timedelta(days=1), "Europe/Berlin")
    request = route.calls.last.request
    _headers_ok(request, "2024-09-04")
    assert dict(request.url.params) == {
        "eventTypeId": "101",
        "start": "2030-03-05T09:00:00Z",
        "end": "2030-03-06T09:00:00Z",
        "timeZone": "Europe/Berlin",
    }
    assert [s.start.astimezone(UTC).hour for s in slots] == [9, 9]


@pytest.mark.asyncio
async def test_get_booking_request_and_404() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        found = mock.get("/v2/bookings/abc").mock(
            return_value=httpx.Response(200, json=success(booking_json(uid="abc")))
        )
        mock.get("/v2/bookings/missing").mock(
            return_value=httpx.Response(
                404,
                json={
                    "status": "error",
                    "error": {
                        "code": "NotFoundException",
                        "message": "Booking with uid=missing was not found",
                    },
                },
            )
        )
        client = _client()
        booking = await client.get_booking("abc")
        assert booking is not None
        assert booking.uid == "abc"
        assert await client.get_booking("missing") is None
    _headers_ok(found.calls.last.request, "2024-08-13")


@pytest.mark.asyncio
async def test_list_bookings_request_and_pagination() -> None:
    page1 = {**success([booking_json(uid="a")]), "pagination": {"hasNextPage": True}}
    page2 = {**success([booking_json(uid="b")]), "pagination": {"hasNextPage": False}}
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.get("/v2/bookings").mock(
            side_effect=[httpx.Response(200, json=page1), httpx.Response(200, json=page2)]
        )
        found = await _client().list_bookings(
            attendee_email="jane@example.test",
            event_type_id=101,
            after_start=START,
            before_end=START + timedelta(hours=2),
            after_created_at=START - timedelta(days=1),
            before_created_at=START,
            status=["upcoming", "past"],
        )
    assert [b.uid for b in found] == ["a", "b"]
    first, second = (call.request for call in route.calls)
    _headers_ok(first, "2024-08-13")
    assert dict(first.url.params) == {
        "attendeeEmail": "jane@example.test",
        "eventTypeId": "101",
        "afterStart": "2030-03-05T09:00:00Z",
        "beforeEnd": "2030-03-05T11:00:00Z",
        "afterCreatedAt": "2030-03-04T09:00:00Z",
        "beforeCreatedAt": "2030-03-05T09:00:00Z",
        "status": "upcoming,past",
        "take": "100",
        "skip": "0",
    }
    assert second.url.params["skip"] == "100"


@pytest.mark.asyncio
async def test_cancel_reschedule_reserve_requests() -> None:
    reservation = {
        "eventTypeId": 101,
        "slotStart": "2030-03-05T09:00:00.000Z",
        "slotEnd": "2030-03-05T09:30:00.000Z",
        "slotDuration": 30,
        "reservationUid": "r-1",
        "reservationDuration": 5,
        "reservationUntil": "2030-03-04T07:05:00.000Z",
    }
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        cancel = mock.post("/v2/bookings/abc/cancel").mock(
            return_value=httpx.Response(200, json=success(booking_json(status="cancelled")))
        )
        move = mock.post("/v2/bookings/abc/reschedule").mock(
            return_value=httpx.Response(201, json=success(booking_json(uid="new")))
        )
        reserve = mock.post("/v2/slots/reservations").mock(
            return_value=httpx.Response(201, json=success(reservation))
        )
        client = _client()
        assert (await client.cancel_booking("abc", "changed plans")).status == "cancelled"
        assert (await client.reschedule_booking("abc", START, "later")).uid == "new"
        held = await client.reserve_slot(101, START, 30)
    assert held.reservation_uid == "r-1"
    _headers_ok(cancel.calls.last.request, "2024-08-13")
    assert json.loads(cancel.calls.last.request.content) == {"cancellationReason": "changed plans"}
    _headers_ok(move.calls.last.request, "2024-08-13")
    assert json.loads(move.calls.last.request.content) == {
        "start": "2030-03-05T09:00:00Z",
        "reschedulingReason": "later",
    }
    _headers_ok(reserve.calls.last.request, "2024-09-04")
    assert json.loads(reserve.calls.last.request.content) == {
        "eventTypeId": 101,
        "slotStart": "2030-03-05T09:00:00Z",
        "slotDuration": 30,
    }


@pytest.mark.asyncio
async def test_metadata_limits_fail_before_sending() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        route = mock.post("/v2/bookings")
        with pytest.raises(CalcomRejected, match="metadata"):
            await _client().create_booking(
                event_type_id=1,
                start=START,
                name="J",
                time_zone="UTC",
                metadata={"k" * 41: "v"},
            )
    assert route.call_count == 0


def test_uid_cannot_escape_its_path_segment() -> None:
    import asyncio

    with pytest.raises(CalcomRejected):
        asyncio.run(_client().get_booking("../v2/bookings"))


def test_base_url_with_v2_suffix_is_normalised() -> None:
    http = build_http_client("https://api.cal.com/v2/", None, 3.0)
    assert str(http.base_url) == "https://api.cal.com"
    assert "authorization" not in http.headers


@pytest.mark.asyncio
async def test_on_response_hook_sees_every_attempt() -> None:
    seen: list[tuple[str, int | str]] = []

    def hook(endpoint: str, status: int | str, seconds: float) -> None:
        seen.append((endpoint, status))
        assert seconds >= 0

    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.get("/v2/bookings/abc").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.Response(200, json=success(booking_json(uid="abc"))),
            ]
        )
        await _client(on_response=hook).get_booking("abc")
    assert seen == [("bookings.get", "ConnectError"), ("bookings.get", 200)]


@pytest.mark.asyncio
async def test_a_broken_hook_does_not_fail_the_call() -> None:
    def hook(endpoint: str, status: int | str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.get("/v2/bookings/abc").mock(
            return_value=httpx.Response(200, json=success(booking_json(uid="abc")))
        )
        assert await _client(on_response=hook).get_booking("abc") is not None


@pytest.mark.parametrize(
    "base",
    [
        "https://api.cal.com",
        "https://api.cal.com/v2/",
        "http://127.0.0.1:8765",
        "https://proxy.example/cal/api",
    ],
)
@pytest.mark.asyncio
async def test_fixed_paths_go_where_httpx_would_send_them(base: str) -> None:
    """The client joins its fixed paths to ``base_url`` once (``CalcomClient._url``): the request must go to
    the URL httpx builds from the relative path, for any base, and follow a base changed afterwards."""
    from voicebook.calcom.client import FIXED_PATHS

    sent: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        if request.url.path.endswith("/reservations"):
            return httpx.Response(201, json=success(_reservation()))
        if request.url.path.endswith("/event-types"):
            return httpx.Response(200, json=success([]))
        if request.url.path.endswith("/slots"):
            return httpx.Response(200, json=success({}))
        if request.method == "POST":
            return httpx.Response(201, json=success(booking_json()))
        return httpx.Response(200, json={**success([]), "pagination": {"hasNextPage": False}})

    http = build_http_client(base, API_KEY, 5.0, transport=httpx.MockTransport(answer))
    client = CalcomClient(http, retry_sleep=NoSleep())

    async def every_fixed_path() -> None:
        await client.get_slots(101, START, START + timedelta(days=1))
        await client.create_booking(event_type_id=101, start=START, name="Jane", time_zone="UTC")
        await client.list_bookings(event_type_id=101)
        await client.reserve_slot(101, START)
        await client.list_event_types()

    for _ in range(2):  # the second round is served from the kept URLs
        await every_fixed_path()
    http.base_url = httpx.URL("https://moved.example/base/")
    await every_fixed_path()

    paths = ("/v2/slots", "/v2/bookings", "/v2/bookings", "/v2/slots/reservations", "/v2/event-types")
    assert set(paths) == FIXED_PATHS
    original = build_http_client(base, None, 1.0)
    without_query = [url.copy_with(query=None) for url in sent]
    assert without_query[:5] == [original.build_request("GET", p).url for p in paths]
    assert sent[5:10] == sent[:5]
    assert without_query[10:] == [http.build_request("GET", p).url for p in paths]
    assert str(without_query[-1]) == "https://moved.example/base/v2/event-types"


def _reservation() -> dict[str, object]:
    return {
        "eventTypeId": 101,
        "slotStart": "2030-03-05T09:00:00.000Z",
        "slotEnd": "2030-03-05T09:30:00.000Z",
        "slotDuration": 30,
        "reservationUid": "r1",
        "reservationDuration": 5,
        "reservationUntil": "2030-03-05T08:05:00.000Z",
    }


@pytest.mark.asyncio
async def test_cookies_are_kept_and_sent_as_httpx_keeps_them() -> None:
    """The client skips reading cookies from responses that set none; one that sets a cookie is kept and
    sent back, one without leaves the jar as it was, and cookies set on the client are sent too."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if request.url.path == "/set":
            return httpx.Response(200, headers={"set-cookie": "__cf_bm=abc; Path=/; HttpOnly"}, json={})
        return httpx.Response(200, json={})

    http = build_http_client("https://api.cal.com", API_KEY, 5.0, transport=httpx.MockTransport(answer))
    await http.get("/plain")
    assert not http.cookies
    await http.get("/set")
    await http.get("/plain")
    await http.get("/plain")
    assert dict(http.cookies) == {"__cf_bm": "abc"}
    http.cookies = {"other": "1"}  # type: ignore[assignment]
    await http.get("/plain")
    assert seen == [None, None, "__cf_bm=abc", "__cf_bm=abc", "other=1"]
