"""Webhook signatures, state-file persistence and the wire details of the sandbox."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from voicebook.calcom import CalcomClient, build_http_client
from voicebook.calcom.sandbox import SIGNATURE_HEADER, Sandbox, SandboxClock

from .conftest import API_KEY, INDIVIDUAL, NOW, ROUND_ROBIN, SLOT, WEBHOOK_SECRET, WebhookInbox


@pytest.mark.asyncio
async def test_webhooks_are_signed_over_the_raw_body(
    client: CalcomClient, sandbox: Sandbox, inbox: WebhookInbox
) -> None:
    booking = await client.create_booking(
        event_type_id=ROUND_ROBIN.id,
        start=SLOT,
        name="Jane",
        time_zone="UTC",
        email="jane@example.test",
        metadata={"call_id": "c1"},
    )
    moved = await client.reschedule_booking(booking.uid, SLOT + timedelta(hours=1))
    await client.cancel_booking(moved.uid, "no longer needed")
    await sandbox.drain_webhooks()
    assert inbox.triggers() == ["BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED"]
    for request in inbox.requests:
        expected = hmac.new(WEBHOOK_SECRET.encode(), request.content, hashlib.sha256).hexdigest()
        assert request.headers[SIGNATURE_HEADER] == expected
        assert request.headers["content-type"] == "application/json"
    created, rescheduled, cancelled = (json.loads(r.content) for r in inbox.requests)
    assert created["payload"]["uid"] == booking.uid
    assert created["payload"]["metadata"] == {"call_id": "c1"}
    assert created["payload"]["status"] == "ACCEPTED"
    assert rescheduled["payload"]["uid"] == moved.uid
    assert rescheduled["payload"]["rescheduleUid"] == booking.uid
    assert cancelled["payload"]["status"] == "CANCELLED"
    assert cancelled["payload"]["cancellationReason"] == "no longer needed"


@pytest.mark.asyncio
async def test_failing_webhook_receiver_does_not_break_booking(clock: SandboxClock) -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("receiver down")

    sandbox = Sandbox(
        clock=clock,
        webhook_url="https://hooks.example.test/",
        webhook_transport=httpx.MockTransport(explode),
        event_types=[INDIVIDUAL],
    )
    http = build_http_client(
        "https://api.cal.com", API_KEY, 5, transport=httpx.ASGITransport(app=sandbox.app)
    )
    async with http:
        booking = await CalcomClient(http).create_booking(
            event_type_id=INDIVIDUAL.id, start=SLOT, name="J", time_zone="UTC", email="j@x.test"
        )
    await sandbox.drain_webhooks()
    assert booking.uid == sandbox.bookings[0].uid
    assert sandbox.webhooks.delivered == []


@pytest.mark.asyncio
async def test_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    first = Sandbox(clock=SandboxClock(NOW), state_file=state, event_types=[ROUND_ROBIN])
    transport = httpx.ASGITransport(app=first.app)
    async with build_http_client("https://api.cal.com", API_KEY, 5, transport=transport) as http:
        booking = await CalcomClient(http).create_booking(
            event_type_id=ROUND_ROBIN.id,
            start=SLOT,
            name="J",
            time_zone="UTC",
            email="shared@x.test",
            metadata={"call_id": "c1"},
        )
    second = Sandbox(clock=SandboxClock(NOW + timedelta(hours=1)), state_file=state)
    assert [b.uid for b in second.bookings] == [booking.uid]
    assert second.engine.event_types[ROUND_ROBIN.id] == ROUND_ROBIN
    transport = httpx.ASGITransport(app=second.app)
    async with build_http_client("https://api.cal.com", API_KEY, 5, transport=transport) as http:
        replay = await CalcomClient(http).create_booking(
            event_type_id=ROUND_ROBIN.id,
            start=SLOT,
            name="K",
            time_zone="UTC",
            email="shared@x.test",
        )
        fresh = await CalcomClient(http).create_booking(
            event_type_id=ROUND_ROBIN.id,
            start=SLOT,
            name="L",
            time_zone="UTC",
            email="other@x.test",
        )
    assert replay.uid == booking.uid
    assert fresh.id == booking.id + 1


@pytest.mark.asyncio
async def test_every_response_has_rate_limit_headers(http: httpx.AsyncClient) -> None:
    reply = await http.get("/v2/bookings/nope", headers={"cal-api-version": "2024-08-13"})
    assert reply.status_code == 404
    assert reply.headers["X-RateLimit-Limit-Default"] == "120"
    assert int(reply.headers["X-RateLimit-Remaining-Default"]) == 119
    assert "X-RateLimit-Reset-Default" in reply.headers
    assert reply.json()["error"]["message"] == "Booking with uid=nope was not found in the database"


@pytest.mark.asyncio
async def test_list_requires_authorization(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="https://api.cal.com"
    ) as anonymous:
        reply = await anonymous.get("/v2/bookings", headers={"cal-api-version": "2024-08-13"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "UnauthorizedException"


@pytest.mark.asyncio
async def test_wrong_api_version_rejects_current_body_shape(http: httpx.AsyncClient) -> None:
    body = {
        "start": "2030-03-05T09:00:00Z",
        "eventTypeId": INDIVIDUAL.id,
        "attendee": {"name": "A", "email": "a@example.test", "timeZone": "UTC"},
    }
    missing = await http.post("/v2/bookings", json=body)
    slots_version = await http.post("/v2/bookings", json=body, headers={"cal-api-version": "2024-09-04"})
    assert missing.status_code == slots_version.status_code == 400
    assert "2024-04-15" in missing.json()["error"]["message"]


@pytest.mark.asyncio
async def test_invalid_body_is_400_with_details(http: httpx.AsyncClient) -> None:
    reply = await http.post(
        "/v2/bookings",
        json={"start": "soon", "eventTypeId": 101, "attendee": {"name": "A", "timeZone": "Mars/X"}},
        headers={"cal-api-version": "2024-08-13"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "BadRequestException"
