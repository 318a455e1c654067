"""Server sessions of PostgreSQL and MariaDB in tests: which one a connection is, and ending it from
another one, as a server restart or failover would."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voicebook.db.lean import LeanConnection


async def session_id(conn: AsyncConnection | LeanConnection) -> int:
    """The server's id of ``conn``'s session (PostgreSQL's backend pid, MariaDB's connection id)."""
    name = conn.dialect.name
    query = select(func.pg_backend_pid() if name == "postgresql" else func.connection_id())
    return int((await conn.execute(query)).scalar_one())


async def end_session(other: AsyncConnection, victim: int) -> None:
    """End the server session ``victim`` from the ``other`` connection."""
    if other.dialect.name == "postgresql":
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    else:
        await other.execute(text(f"KILL {int(victim)}"))


async def kill(engine: AsyncEngine, victim: int) -> None:
    """End the server session ``victim`` from a connection of its own."""
    async with engine.connect() as other:
        await end_session(other, victim)
