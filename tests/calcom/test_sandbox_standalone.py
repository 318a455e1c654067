"""Served by uvicorn, faults must look like a real network to a real client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import uvicorn

from voicebook.calcom import CalcomClient, OutcomeUnknown, build_http_client
from voicebook.calcom.sandbox import Sandbox
from voicebook.calcom.sandbox.server import build

from .conftest import INDIVIDUAL, NOW, SLOT


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[Sandbox, str]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sandbox = build(event_types=[INDIVIDUAL], hang_seconds=0.5, control_enabled=True)
    sandbox.clock.set(NOW)
    server = uvicorn.Server(uvicorn.Config(sandbox.app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield sandbox, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.asyncio
async def test_hang_and_reset_faults_over_real_http(served: tuple[Sandbox, str]) -> None:
    sandbox, url = served
    async with build_http_client(url, "cal_test_key", 0.2) as http:
        client = CalcomClient(http)
        sandbox.faults.inject("read_timeout", "bookings.create")
        with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
            await client.create_booking(
                event_type_id=INDIVIDUAL.id, start=SLOT, name="A", time_zone="UTC", email="a@x.test"
            )
        sandbox.faults.inject("connection_reset", "bookings.create")
        with pytest.raises(OutcomeUnknown, match="RemoteProtocolError"):
            await client.create_booking(
                event_type_id=INDIVIDUAL.id,
                start=SLOT.replace(hour=10),
                name="B",
                time_zone="UTC",
                email="b@x.test",
            )
        assert len(sandbox.bookings) == 2
        listed = await client.list_bookings(attendee_email="a@x.test")
        assert [b.uid for b in listed] == [sandbox.bookings[0].uid]
    await asyncio.sleep(0.5)  # let the hung handler finish before shutdown
