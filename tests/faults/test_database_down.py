"""The database stops mid-request: the app talks to it through a TCP proxy the test cuts.

Runs on PostgreSQL and MariaDB (a server that can die; SQLite is a file in the process). The proxy
relays to this session's scratch database, so everything before the cut is real; ``cut`` refuses new
connections and aborts the open ones, which is what the app sees when the database server dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.e2e.harness import Env
from tests.faults.scene import (
    Scene,
    TcpProxy,
    appointments_with,
    attempts_of,
    eventually,
    haarschnitt,
    reconcile,
    service,
)

from voicebook.api import functions
from voicebook.db.session import make_engine, make_sessionmaker

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True),
]


def function_budget(name: str = "book_appointment") -> float:
    """The function endpoint's own time budget (a number, or per function with a default)."""
    budget = functions.FUNCTION_BUDGET_SECONDS
    if isinstance(budget, dict):
        return float(budget.get(name, getattr(functions, "DEFAULT_BUDGET_SECONDS", 25.0)))
    return float(budget)


@asynccontextmanager
async def behind_proxy(db_url: str) -> AsyncIterator[tuple[Env, TcpProxy]]:
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        async with service(proxied) as env:
            try:
                yield env, proxy
            finally:
                if not proxy.up:
                    await proxy.restore()  # let the harness dispose its engines cleanly
    finally:
        await proxy.aclose()


@asynccontextmanager
async def direct(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on the real database, bypassing the proxy (the test's own eyes)."""
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_database_dies_while_cal_com_is_booking(db_url: str, request: pytest.FixtureRequest) -> None:
    async with behind_proxy(db_url) as (env, proxy), direct(db_url) as real:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("latency", "bookings.create", latency_seconds=1.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        flow = asyncio.create_task(scene.book(haarschnitt(10)))

        async def sent() -> bool:
            return [a.state for a in await attempts_of(real)] == ["sent"]

        await eventually(sent, what="the attempt was written ahead and marked sent")
        await proxy.cut()
        body = await asyncio.wait_for(flow, function_budget() + 5)
        elapsed = loop.time() - started
        assert body["status"] == "upstream_error", body  # HTTP 200 (Scene.book asserts it), not a 500
        assert body["ok"] is False
        assert elapsed < function_budget(), elapsed  # answered within its budget, not hung
        ready = await env.client.get("/readyz")  # its 503 is the point, so it stays out of invariant (4)
        assert ready.status_code == 503, ready.text
        assert len(env.sandbox.bookings) == 1  # Cal.com did book: the reconciler must not lose it
        assert [a.state for a in await attempts_of(real)] == ["sent"]

        await proxy.restore()
        ready = await env.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        summary = await reconcile(env)
        assert summary.recorded == 1, summary.rows
        (booking,) = env.sandbox.bookings
        assert len(await appointments_with(real, booking.uid)) == 1
        again = await scene.book(haarschnitt(10))  # the agent asks again on the same call
        assert again["status"] == "booked", again
        assert again["appointment"]["calcom_booking_uid"] == booking.uid
        await scene.check(real)


async def test_database_down_before_the_request_never_reaches_cal_com(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with behind_proxy(db_url) as (env, proxy), direct(db_url) as real:
        scene = Scene(env, request.node.name)
        await proxy.cut()
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = await scene.book(haarschnitt(11))
        assert loop.time() - started < 10
        assert body["status"] == "upstream_error", body
        assert env.sandbox.bookings == []  # nothing written ahead → nothing sent
        assert (await env.client.get("/readyz")).status_code == 503
        await proxy.restore()
        again = await scene.book(haarschnitt(11))
        assert again["status"] == "booked", again
        assert len(env.sandbox.bookings) == 1
        await scene.check(real)
