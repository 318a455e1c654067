"""Shared pieces of the fault scenarios: a recording wrapper around the e2e harness, the reconciler,
a cuttable TCP proxy (a database that dies mid-request), and small polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.e2e.harness import CALCOM_SECRET, Env, running_service
from tests.faults import invariants
from tests.faults.invariants import Transcript

from voicebook.calcom.sandbox import SIGNATURE_HEADER, StoredBooking, sign
from voicebook.calcom.sandbox.render import webhook_body
from voicebook.db.base import utc_now
from voicebook.db.models import Appointment, BookingAttempt

BERLIN = ZoneInfo("Europe/Berlin")
BOOK = "book_appointment"
T = TypeVar("T")


def weekday_at(hour: int, minute: int = 0, days_ahead: int = 2) -> str:
    """A Berlin wall-clock start on a coming weekday, as the agent passes it."""
    day = datetime.now(BERLIN) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


def haarschnitt(hour: int = 10, minute: int = 0, name: str = "Jörg Müller") -> dict[str, Any]:
    return {"service": "Haarschnitt", "start": weekday_at(hour, minute), "name": name}


async def eventually(
    probe: Callable[[], Awaitable[T]], *, within: float = 10.0, every: float = 0.02, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the scenario after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never happened within {within:g}s: {what}")
        await asyncio.sleep(every)


def service(db_url: str, **overrides: Any) -> contextlib.AbstractAsyncContextManager[Env]:
    """The harness with the server's periodic reconciler off: scenarios run the reconciler themselves,
    so what resolved an attempt is never a race (pass ``reconcile_interval_seconds`` to turn it on)."""
    overrides.setdefault("reconcile_interval_seconds", 0)
    return running_service(db_url, **overrides)


@dataclass
class Scene:
    """One scenario over the in-process harness: every answer is kept for the invariants."""

    env: Env
    name: str
    transcript: Transcript = field(default_factory=Transcript)

    async def book(
        self, args: dict[str, Any], *, call_id: str = "call_687", from_number: str = "+491701234567"
    ) -> dict[str, Any]:
        response = await self.env.call(BOOK, args, call_id=call_id, from_number=from_number)
        body = self.transcript.add(response, call_id)
        assert response.status_code == 200, (response.status_code, response.text)
        assert body is not None
        return body

    async def webhook(self, trigger: str, booking: StoredBooking) -> httpx.Response:
        """Deliver a Cal.com webhook for ``booking`` as Cal.com would: signed over the raw body."""
        sandbox = self.env.sandbox
        event = webhook_body(
            trigger, booking, sandbox.engine.event_type(booking.event_type_id), sandbox.clock.now()
        )
        raw = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, CALCOM_SECRET)}
        response = await self.env.client.post("/calcom/webhook", content=raw, headers=headers)
        self.transcript.add(response, None)
        return response

    async def check(self, sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> None:
        await invariants.check(
            self.name,
            invariants.upstream_of(self.env.sandbox),
            sessionmaker or self.env.sessionmaker,
            self.transcript,
        )


async def attempts_of(sessionmaker: async_sessionmaker[AsyncSession]) -> list[BookingAttempt]:
    async with sessionmaker() as session:
        query = select(BookingAttempt).order_by(BookingAttempt.id)
        return list((await session.execute(query)).scalars().all())


async def appointments_with(sessionmaker: async_sessionmaker[AsyncSession], uid: str) -> list[Appointment]:
    async with sessionmaker() as session:
        query = select(Appointment).where(Appointment.calcom_booking_uid == uid)
        return list((await session.execute(query)).scalars().all())


async def reconcile(env: Env, *, ahead: timedelta = timedelta(minutes=5), **kw: Any) -> Any:
    """One reconciler pass over the harness' database and sandbox.

    ``ahead`` moves the reconciler's clock forward so the booking flow's attempt locks (30 s by default)
    count as expired without the test sleeping through them.
    """
    from voicebook.booking.reconcile.driver import reconcile_once
    from voicebook.bootstrap import booking_policy, sandbox_gateway

    gateway, http = sandbox_gateway(env.sandbox)
    policy = dataclasses.replace(booking_policy(env.settings), clock=lambda: utc_now() + ahead)
    try:
        return await reconcile_once(env.sessionmaker, gateway, policy, owner="fault-suite", **kw)
    finally:
        await http.aclose()


class TcpProxy:
    """A TCP relay in this event loop between the app and its database, that a test can cut and restore.

    ``cut`` closes the listening socket (new connections are refused) and aborts every relayed
    connection, so the app sees exactly what a database crash looks like from its side.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def up(self) -> bool:
        return self._server is not None

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        await self._settle()

    async def restore(self) -> None:
        await self.start()

    async def aclose(self) -> None:
        await self.cut()

    async def _settle(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
