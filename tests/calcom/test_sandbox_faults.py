"""Sandbox faults as the client sees them in-process."""

from __future__ import annotations

import httpx
import pytest

from voicebook.booking import errors as domain
from voicebook.booking.types import Attendee, BookingRequest
from voicebook.calcom import (
    CalcomClient,
    CalcomGateway,
    CalcomUnavailable,
    OutcomeUnknown,
    RateLimited,
    build_http_client,
)
from voicebook.calcom.sandbox import Fault, Faults, Sandbox

from .conftest import API_KEY, BASE_URL, INDIVIDUAL, SLOT, NoSleep


def _create(client: CalcomClient, email: str = "jane@example.test"):  # type: ignore[no-untyped-def]
    return client.create_booking(
        event_type_id=INDIVIDUAL.id, start=SLOT, name="Jane", time_zone="UTC", email=email
    )


@pytest.mark.asyncio
async def test_read_timeout_after_store_leaves_a_booking_and_is_outcome_unknown(
    client: CalcomClient, sandbox: Sandbox
) -> None:
    sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
    with pytest.raises(OutcomeUnknown):
        await _create(client)
    assert len(sandbox.bookings) == 1
    found = await client.list_bookings(attendee_email="jane@example.test")
    assert [b.uid for b in found] == [sandbox.bookings[0].uid]


@pytest.mark.asyncio
async def test_read_timeout_before_store_leaves_nothing(client: CalcomClient, sandbox: Sandbox) -> None:
    sandbox.faults.inject("read_timeout", "bookings.create", phase="before")
    with pytest.raises(OutcomeUnknown):
        await _create(client)
    assert sandbox.bookings == []


@pytest.mark.asyncio
async def test_connection_reset_after_store(client: CalcomClient, sandbox: Sandbox) -> None:
    sandbox.faults.inject("connection_reset", "bookings.create")
    with pytest.raises(OutcomeUnknown):
        await _create(client)
    assert len(sandbox.bookings) == 1


@pytest.mark.asyncio
async def test_500_on_create_is_ambiguous_but_on_get_is_unavailable(
    client: CalcomClient, sandbox: Sandbox
) -> None:
    sandbox.faults.inject("http_error", "bookings.create", phase="after", status=500)
    with pytest.raises(OutcomeUnknown):
        await _create(client)
    sandbox.faults.inject("http_error", "bookings.get", status=500)
    with pytest.raises(CalcomUnavailable):
        await client.get_booking(sandbox.bookings[0].uid)


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts what really left the client, per ``METHOD path``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.asyncio
async def test_5xx_after_store_sends_the_post_once_and_is_outcome_unknown(
    sandbox: Sandbox, no_sleep: NoSleep, status: int
) -> None:
    """Case 4 (issue 13): Cal.com stores the booking, then answers 503; the client must not re-send."""
    counting = CountingTransport(httpx.ASGITransport(app=sandbox.app))
    async with build_http_client(BASE_URL, API_KEY, 5.0, transport=counting) as http:
        gateway = CalcomGateway(CalcomClient(http, retry_sleep=no_sleep))
        sandbox.faults.inject("http_error", "bookings.create", phase="after", status=status)
        request = BookingRequest(
            event_type_id=INDIVIDUAL.id,
            start=SLOT,
            attendee=Attendee(name="Jane", email="jane@example.test", time_zone="UTC"),
            metadata={"call_id": "c1", "attempt_id": "a1"},
        )
        with pytest.raises(domain.OutcomeUnknown):
            await gateway.create_booking(request)
        assert counting.sent == ["POST /v2/bookings"]
        assert no_sleep.calls == []
        (stored,) = sandbox.bookings
        assert stored.metadata["attempt_id"] == "a1"  # the lookup the domain does next finds it


@pytest.mark.asyncio
async def test_503_before_store_is_outcome_unknown_too(client: CalcomClient, sandbox: Sandbox) -> None:
    """The client cannot tell a 503 before processing from one after; the domain's lookup can."""
    sandbox.faults.inject("http_error", "bookings.create", phase="before", status=503)
    with pytest.raises(OutcomeUnknown):
        await _create(client)
    assert sandbox.bookings == []


@pytest.mark.parametrize("endpoint", ["bookings.cancel", "bookings.reschedule"])
@pytest.mark.asyncio
async def test_503_after_a_change_is_outcome_unknown_and_sent_once(
    client: CalcomClient, sandbox: Sandbox, no_sleep: NoSleep, endpoint: str
) -> None:
    booking = await _create(client)
    sandbox.faults.inject("http_error", endpoint, phase="after", status=503)
    change = (
        client.cancel_booking(booking.uid, "asked")
        if endpoint == "bookings.cancel"
        else client.reschedule_booking(booking.uid, SLOT.replace(hour=11), "asked")
    )
    with pytest.raises(OutcomeUnknown):
        await change
    assert no_sleep.calls == []
    assert sandbox.faults.active() == []
    statuses = sorted(b.status for b in sandbox.bookings)
    # Stored once: a re-send would have failed on the already cancelled booking instead.
    assert statuses == (["cancelled"] if endpoint == "bookings.cancel" else ["accepted", "cancelled"])


@pytest.mark.asyncio
async def test_503_on_a_read_is_retried_then_succeeds(
    client: CalcomClient, sandbox: Sandbox, no_sleep: NoSleep
) -> None:
    sandbox.faults.inject("http_error", "slots.get", status=503, times=1)
    assert await client.get_slots(INDIVIDUAL.id, SLOT, SLOT.replace(hour=12))
    assert len(no_sleep.calls) == 1


@pytest.mark.asyncio
async def test_rate_limit_fault_is_retried_within_the_cap(
    client: CalcomClient, sandbox: Sandbox, no_sleep: NoSleep
) -> None:
    sandbox.faults.inject("rate_limit", "slots.get", times=2, reset_seconds=1)
    assert await client.get_slots(INDIVIDUAL.id, SLOT, SLOT.replace(hour=12))
    assert no_sleep.calls == [1.0, 1.0]


@pytest.mark.asyncio
async def test_rate_limit_that_persists_raises_after_the_budget(
    client: CalcomClient, sandbox: Sandbox, no_sleep: NoSleep
) -> None:
    sandbox.faults.inject("rate_limit", "slots.get", times=None, reset_seconds=2)
    with pytest.raises(RateLimited) as info:
        await client.get_slots(INDIVIDUAL.id, SLOT, SLOT)
    assert info.value.reset_seconds == 2
    assert no_sleep.calls == [2.0]  # a second 2 s wait would pass the 2 s budget


@pytest.mark.asyncio
async def test_long_rate_limit_reset_fails_fast(
    client: CalcomClient, sandbox: Sandbox, no_sleep: NoSleep
) -> None:
    sandbox.faults.inject("rate_limit", "*", times=None, reset_seconds=60)
    with pytest.raises(RateLimited) as info:
        await _create(client)
    assert info.value.reset_seconds == 60
    assert no_sleep.calls == []


def test_fault_probability_and_times_are_honoured() -> None:
    faults = Faults(seed=7)
    faults.add(Fault(kind="http_error", endpoint="bookings.get", times=2))
    faults.add(Fault(kind="latency", probability=0.0, times=None))
    assert [f.kind for f in faults.draw("bookings.get")] == ["http_error"]
    assert faults.draw("bookings.create") == []
    assert len(faults.draw("bookings.get")) == 1
    assert faults.draw("bookings.get") == []
    faults.clear()
    assert faults.active() == []


def test_unknown_endpoint_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        Fault(kind="latency", endpoint="bookings.delete")


@pytest.mark.asyncio
async def test_latency_fault_delays_but_succeeds(client: CalcomClient, sandbox: Sandbox) -> None:
    sandbox.faults.inject("latency", "slots.get", latency_seconds=0.01, latency_max_seconds=0.02)
    assert await client.get_slots(INDIVIDUAL.id, SLOT, SLOT.replace(hour=12))


@pytest.mark.asyncio
async def test_control_api_sets_faults_and_clock(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    reply = await http.post(
        "/_sandbox/faults", json={"kind": "http_error", "endpoint": "bookings.get", "status": 502}
    )
    assert reply.status_code == 200
    assert sandbox.faults.active()[0].status == 502
    assert (await http.delete("/_sandbox/faults")).json() == {"data": []}
    moved = await http.post("/_sandbox/clock", json={"advance_seconds": 60})
    assert moved.json()["now"] == "2030-03-04T07:01:00.000Z"
    bad = await http.post("/_sandbox/faults", json={"kind": "meteor"})
    assert bad.status_code == 400
    added = await http.post(
        "/_sandbox/event-types",
        json={"id": 9, "slug": "x", "length_minutes": 15, "working_hours": [["Sat", "10:00", "12:00"]]},
    )
    assert added.status_code == 200
    assert sandbox.engine.event_types[9].windows[0].days == frozenset({5})
    assert (await http.get("/_sandbox/bookings")).json() == {"data": []}


@pytest.mark.asyncio
async def test_control_api_is_404_unless_enabled(http: httpx.AsyncClient) -> None:
    plain = Sandbox()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=plain.app), base_url="https://api.cal.com"
    ) as other:
        reply = await other.get("/_sandbox/bookings")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "NotFoundException"
