"""Check-out pings: skipped for a connection that just worked, done for an idle one (PostgreSQL, MariaDB).

``make_engine`` replaces SQLAlchemy's ``pool_pre_ping`` (a ``BEGIN; ROLLBACK`` round trip on every
check-out) with the same check minus the round trip for a connection checked in less than
``ALIVE_BYPASS_SECONDS`` ago. These tests pin both halves: the saving (no ping within the window) and
the guarantee the ping exists for (a connection the server killed while it sat idle is replaced on
check-out, and the request on it succeeds), and the LIFO order that keeps a trickle of work on one connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.server_sessions import kill, session_id

from voicebook.db import session as db_session
from voicebook.db.session import make_engine

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True),
]


def count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    dialect: Any = engine.sync_engine.dialect
    real = dialect.do_ping

    def spy(dbapi_conn: Any) -> bool:
        calls.append(1)
        return bool(real(dbapi_conn))

    monkeypatch.setattr(dialect, "do_ping", spy)
    return calls


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        pings = count_pings(engine, monkeypatch)
        for _ in range(20):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert pings == []  # 20 check-outs of a connection that had just worked: no round trip
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_and_replaced_when_the_server_killed_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "ALIVE_BYPASS_SECONDS", 0.2)
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    killer = make_engine(db_url)
    try:
        pings = count_pings(engine, monkeypatch)
        async with engine.connect() as conn:
            first = await session_id(conn)
        await kill(killer, first)  # the server drops the pooled connection while it sits idle
        await asyncio.sleep(0.4)  # longer than the window: the next check-out pings
        async with engine.connect() as conn:
            second = await session_id(conn)  # would raise on the dead connection without the ping
        assert pings, "an idle connection must be pinged on check-out"
        assert second != first
    finally:
        await killer.dispose()
        await engine.dispose()


async def test_one_caller_at_a_time_keeps_using_the_connection_that_just_worked(db_url: str) -> None:
    """LIFO check-out: after a burst filled the pool, sequential work reuses the last connection (within
    the ping window) rather than cycling through connections that sat idle (each pinged in turn)."""
    engine = make_engine(db_url, pool_size=3, max_overflow=0)
    try:
        held = [await engine.connect() for _ in range(3)]  # a burst: three pooled connections
        for conn in held:
            await conn.execute(text("SELECT 1"))
        for conn in held:
            await conn.close()
        seen = []
        for _ in range(6):
            async with engine.connect() as conn:
                seen.append(await session_id(conn))
        assert len(set(seen)) == 1, seen
    finally:
        await engine.dispose()
