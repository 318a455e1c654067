"""Bookings through the real client: taken slots, cancel, reschedule, lookups."""

from __future__ import annotations

from datetime import timedelta

import pytest

from voicebook.calcom import CalcomClient, CalcomRejected, SlotUnavailable
from voicebook.calcom.sandbox import Sandbox

from .conftest import CONFIRM, INDIVIDUAL, NOW, ROUND_ROBIN, SLOT


async def _book(client: CalcomClient, event_type_id: int = INDIVIDUAL.id, **kw: object):
    args = {
        "event_type_id": event_type_id,
        "start": SLOT,
        "name": "Jane Caller",
        "time_zone": "Europe/Berlin",
        "email": "jane@example.test",
        "phone_number": "+4915112345678",
        "metadata": {"call_id": "call_1"},
    }
    args.update(kw)
    return await client.create_booking(**args)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_create_then_get_round_trips(client: CalcomClient, sandbox: Sandbox) -> None:
    created = await _book(client)
    assert created.status == "accepted"
    assert created.start == SLOT
    assert created.created_at == NOW
    assert len(created.uid) == 22
    assert created.metadata == {"call_id": "call_1"}
    fetched = await client.get_booking(created.uid)
    assert fetched is not None
    assert fetched.uid == created.uid
    assert [b.uid for b in sandbox.bookings] == [created.uid]


@pytest.mark.asyncio
async def test_get_unknown_uid_is_none(client: CalcomClient) -> None:
    assert await client.get_booking("NoSuchBooking1234567890") is None


@pytest.mark.asyncio
async def test_taken_slot_on_individual_event_type_is_400_not_a_replay(
    client: CalcomClient, sandbox: Sandbox
) -> None:
    await _book(client)
    with pytest.raises(SlotUnavailable, match="User either already has booking"):
        await _book(client)  # identical request: plain individual types do not dedupe
    assert len(sandbox.bookings) == 1


@pytest.mark.asyncio
async def test_round_robin_uses_the_second_host_then_reports_hosts_busy(
    client: CalcomClient,
) -> None:
    first = await _book(client, ROUND_ROBIN.id, email="a@example.test")
    second = await _book(client, ROUND_ROBIN.id, email="b@example.test")
    assert {first.hosts[0].id, second.hosts[0].id} == {2, 3}
    with pytest.raises(SlotUnavailable, match="One of the hosts"):
        await _book(client, ROUND_ROBIN.id, email="c@example.test")


@pytest.mark.asyncio
async def test_past_and_off_grid_starts_are_refused(client: CalcomClient) -> None:
    with pytest.raises(SlotUnavailable, match="in the past"):
        await _book(client, start=NOW - timedelta(hours=1))
    with pytest.raises(SlotUnavailable, match="can't be booked"):
        await _book(client, start=SLOT + timedelta(minutes=7))
    with pytest.raises(SlotUnavailable, match="can't be booked"):
        await _book(client, start=SLOT.replace(hour=20))  # outside working hours


@pytest.mark.asyncio
async def test_unknown_event_type_is_404(client: CalcomClient) -> None:
    with pytest.raises(CalcomRejected) as info:
        await _book(client, 999)
    assert info.value.status == 404
    assert "Event type with id 999 not found." in info.value.detail


@pytest.mark.asyncio
async def test_cancel_frees_the_slot_and_repeat_cancel_is_400(client: CalcomClient) -> None:
    booking = await _book(client)
    cancelled = await client.cancel_booking(booking.uid, "caller asked")
    assert cancelled.status == "cancelled"
    assert cancelled.cancellation_reason == "caller asked"
    again = await _book(client, email="other@example.test")
    assert again.uid != booking.uid
    with pytest.raises(CalcomRejected, match="already been cancelled"):
        await client.cancel_booking(booking.uid, "twice")


@pytest.mark.asyncio
async def test_reschedule_gives_a_new_uid_and_cancels_the_old(client: CalcomClient) -> None:
    booking = await _book(client)
    moved = await client.reschedule_booking(booking.uid, SLOT + timedelta(hours=1), "later")
    assert moved.uid != booking.uid
    assert moved.rescheduled_from_uid == booking.uid
    assert moved.metadata == booking.metadata
    assert moved.start == SLOT + timedelta(hours=1)
    old = await client.get_booking(booking.uid)
    assert old is not None
    assert old.status == "cancelled"
    assert old.rescheduled_to_uid == moved.uid
    with pytest.raises(CalcomRejected, match="rescheduled already"):
        await client.reschedule_booking(booking.uid, SLOT + timedelta(hours=2))


@pytest.mark.asyncio
async def test_requires_confirmation_books_pending(client: CalcomClient) -> None:
    booking = await _book(client, CONFIRM.id)
    assert booking.status == "pending"


@pytest.mark.asyncio
async def test_phone_only_attendee_gets_sms_email(client: CalcomClient) -> None:
    booking = await _book(client, email=None, phone_number="+919876543210")
    assert booking.attendees[0].email == "919876543210@sms.cal.com"


@pytest.mark.asyncio
async def test_list_bookings_follows_pagination(
    client: CalcomClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for hour in range(8):
        await _book(client, start=SLOT + timedelta(minutes=30 * hour))
    monkeypatch.setattr("voicebook.calcom.client.LIST_PAGE_SIZE", 3)
    found = await client.list_bookings(attendee_email="jane@example.test", event_type_id=INDIVIDUAL.id)
    assert len(found) == 8
    assert [b.start for b in found] == sorted(b.start for b in found)
    assert await client.list_bookings(attendee_email="nobody@example.test") == []
