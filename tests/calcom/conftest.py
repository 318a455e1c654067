"""Fixtures: a sandbox on a frozen clock, driven through the real client over ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from voicebook.calcom import CalcomClient, build_http_client
from voicebook.calcom.sandbox import Sandbox, SandboxClock, SandboxEventType, SandboxHost

BASE_URL = "https://api.cal.com"
API_KEY = "cal_test_0123456789abcdef"
WEBHOOK_URL = "https://hooks.example.test/calcom"
WEBHOOK_SECRET = "whsec_sandbox"

# Monday 2030-03-04, 07:00 UTC = 08:00 Berlin (CET, before the March DST switch).
NOW = datetime(2030, 3, 4, 7, 0, tzinfo=UTC)
# Tuesday 10:00 Berlin.
SLOT = datetime(2030, 3, 5, 9, 0, tzinfo=UTC)

ALICE = SandboxHost(1, "Alice Host", "alice@clinic.test", "alice", "Europe/Berlin")
BOB = SandboxHost(2, "Bob Host", "bob@clinic.test", "bob", "Europe/Berlin")
CAROL = SandboxHost(3, "Carol Host", "carol@clinic.test", "carol", "Europe/Berlin")

INDIVIDUAL = SandboxEventType(id=101, slug="consult", length_minutes=30, hosts=[ALICE])
ROUND_ROBIN = SandboxEventType(
    id=202, slug="haircut", length_minutes=30, scheduling_type="roundRobin", hosts=[BOB, CAROL]
)
CONFIRM = SandboxEventType(
    id=303, slug="intake", length_minutes=60, requires_confirmation=True, hosts=[ALICE]
)


@dataclass
class WebhookInbox:
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)

    def triggers(self) -> list[str]:
        import json

        return [json.loads(r.content)["triggerEvent"] for r in self.requests]


class NoSleep:
    """Records retry sleeps instead of sleeping, so retry tests run instantly."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(NOW)


@pytest.fixture
def inbox() -> WebhookInbox:
    return WebhookInbox()


@pytest.fixture
def sandbox(clock: SandboxClock, inbox: WebhookInbox) -> Sandbox:
    return Sandbox(
        clock=clock,
        webhook_url=WEBHOOK_URL,
        webhook_secret=WEBHOOK_SECRET,
        webhook_transport=httpx.MockTransport(inbox.handle),
        control_enabled=True,
        event_types=[INDIVIDUAL, ROUND_ROBIN, CONFIRM],
    )


@pytest.fixture
def no_sleep() -> NoSleep:
    return NoSleep()


@pytest_asyncio.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    client = build_http_client(BASE_URL, API_KEY, 5.0, transport=httpx.ASGITransport(app=sandbox.app))
    async with client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, no_sleep: NoSleep) -> CalcomClient:
    return CalcomClient(http, retry_sleep=no_sleep)


def booking_json(**overrides: Any) -> dict[str, Any]:
    """A BookingOutput_2024_08_13 as Cal.com sends it."""
    data: dict[str, Any] = {
        "id": 4242,
        "uid": "8Fxv4pCqnb1Jva1w9wn5wX",
        "title": "Consult between Alice Host and Jane Caller",
        "description": "",
        "hosts": [
            {
                "id": 1,
                "name": "Alice Host",
                "email": "alice@clinic.test",
                "username": "alice",
                "timeZone": "Europe/Berlin",
            }
        ],
        "status": "accepted",
        "start": "2030-03-05T09:00:00.000Z",
        "end": "2030-03-05T09:30:00.000Z",
        "duration": 30,
        "eventTypeId": 101,
        "eventType": {"id": 101, "slug": "consult"},
        "location": "",
        "absentHost": False,
        "createdAt": "2030-03-04T07:00:00.000Z",
        "updatedAt": "2030-03-04T07:00:00.000Z",
        "metadata": {"call_id": "call_1"},
        "attendees": [
            {
                "name": "Jane Caller",
                "email": "jane@example.test",
                "timeZone": "Europe/Berlin",
                "language": "en",
                "absent": False,
                "phoneNumber": "+4915112345678",
            }
        ],
        "guests": [],
        "bookingFieldsResponses": {"name": "Jane Caller", "email": "jane@example.test"},
        "someFutureField": {"ignored": True},
    }
    data.update(overrides)
    return data


def success(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


@pytest_asyncio.fixture
async def http_raw_create(sandbox: Sandbox, http: httpx.AsyncClient) -> httpx.Response:
    """The raw 409 of mechanism B: book a slot, then book it again past availability."""
    body = {
        "start": "2030-03-05T09:00:00Z",
        "eventTypeId": INDIVIDUAL.id,
        "attendee": {"name": "A", "email": "a@example.test", "timeZone": "Europe/Berlin"},
    }
    headers = {"cal-api-version": "2024-08-13"}
    first = await http.post("/v2/bookings", json=body, headers=headers)
    assert first.status_code == 201
    sandbox.faults.inject("skip_availability", "bookings.create")
    other = {**body, "attendee": {**body["attendee"], "email": "b@example.test"}}
    return await http.post("/v2/bookings", json=other, headers=headers)
