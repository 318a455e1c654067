"""Cal.com's two dedupe mechanisms (tests/contract/data/BEHAVIOUR.md §3), with the seed incident."""

from __future__ import annotations

from datetime import timedelta

import pytest

from voicebook.calcom import CalcomClient, SlotUnavailable
from voicebook.calcom.sandbox import Sandbox

from .conftest import CONFIRM, INDIVIDUAL, NOW, ROUND_ROBIN, SLOT, WebhookInbox

SHARED_FALLBACK = "booking@salon.example"


async def _book(client: CalcomClient, event_type_id: int, **kw: object):
    args: dict[str, object] = {
        "event_type_id": event_type_id,
        "start": SLOT,
        "name": "First Caller",
        "time_zone": "Europe/Berlin",
        "email": SHARED_FALLBACK,
        "metadata": {"call_id": "call_first"},
    }
    args.update(kw)
    return await client.create_booking(**args)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_seed_incident_round_robin_replays_the_first_booking(
    client: CalcomClient, sandbox: Sandbox, inbox: WebhookInbox
) -> None:
    first = await _book(client, ROUND_ROBIN.id)
    await sandbox.drain_webhooks()
    assert inbox.triggers() == ["BOOKING_CREATED"]

    sandbox.clock.advance(timedelta(minutes=35))
    second = await _book(client, ROUND_ROBIN.id, name="Second Caller", metadata={"call_id": "call_second"})
    await sandbox.drain_webhooks()

    assert second.uid == first.uid
    assert second.id == first.id
    assert second.created_at == first.created_at == NOW
    assert second.metadata == {"call_id": "call_first"}
    assert [a.name for a in second.attendees] == ["First Caller"]
    assert len(sandbox.bookings) == 1
    assert inbox.triggers() == ["BOOKING_CREATED"]  # no webhook for the replay


@pytest.mark.asyncio
async def test_replay_has_no_time_window(client: CalcomClient, sandbox: Sandbox) -> None:
    first = await _book(client, ROUND_ROBIN.id)
    sandbox.clock.set(SLOT - timedelta(minutes=1))
    again = await _book(client, ROUND_ROBIN.id, name="Much Later")
    assert again.uid == first.uid


@pytest.mark.asyncio
async def test_replay_precedes_availability_even_when_all_hosts_are_busy(
    client: CalcomClient, sandbox: Sandbox
) -> None:
    first = await _book(client, ROUND_ROBIN.id)
    await _book(client, ROUND_ROBIN.id, email="other@example.test")  # both hosts now busy
    again = await _book(client, ROUND_ROBIN.id)
    assert again.uid == first.uid
    assert len(sandbox.bookings) == 2


@pytest.mark.asyncio
async def test_different_phone_is_not_a_replay(client: CalcomClient, sandbox: Sandbox) -> None:
    first = await _book(client, ROUND_ROBIN.id, phone_number="+4915100000001")
    second = await _book(client, ROUND_ROBIN.id, phone_number="+4915100000002")
    assert second.uid != first.uid
    assert len(sandbox.bookings) == 2


@pytest.mark.asyncio
async def test_no_phone_sent_matches_on_email_alone(client: CalcomClient) -> None:
    first = await _book(client, ROUND_ROBIN.id, phone_number="+4915100000001")
    second = await _book(client, ROUND_ROBIN.id)
    assert second.uid == first.uid


@pytest.mark.asyncio
async def test_email_match_is_case_sensitive(client: CalcomClient) -> None:
    first = await _book(client, ROUND_ROBIN.id)
    second = await _book(client, ROUND_ROBIN.id, email=SHARED_FALLBACK.upper())
    assert second.uid != first.uid


@pytest.mark.asyncio
async def test_cancelled_booking_is_never_replayed(client: CalcomClient) -> None:
    first = await _book(client, ROUND_ROBIN.id)
    await client.cancel_booking(first.uid, "gone")
    second = await _book(client, ROUND_ROBIN.id)
    assert second.uid != first.uid


@pytest.mark.asyncio
async def test_requires_confirmation_replays_pending(
    client: CalcomClient, sandbox: Sandbox, inbox: WebhookInbox
) -> None:
    first = await _book(client, CONFIRM.id)
    second = await _book(client, CONFIRM.id, name="Someone Else")
    await sandbox.drain_webhooks()
    assert first.status == "pending"
    assert second.uid == first.uid
    assert inbox.triggers() == ["BOOKING_REQUESTED"]


@pytest.mark.asyncio
async def test_mechanism_b_409_when_availability_is_skipped(client: CalcomClient, sandbox: Sandbox) -> None:
    await _book(client, INDIVIDUAL.id)
    sandbox.faults.inject("skip_availability", "bookings.create")
    with pytest.raises(SlotUnavailable, match="booking_conflict_error"):
        await _book(client, INDIVIDUAL.id, email="other@example.test")
    assert len(sandbox.bookings) == 1


@pytest.mark.asyncio
async def test_mechanism_b_wire_body_is_bare(http_raw_create) -> None:  # type: ignore[no-untyped-def]
    response = http_raw_create
    assert response.status_code == 409
    assert response.json() == {"statusCode": 409, "message": "booking_conflict_error"}
