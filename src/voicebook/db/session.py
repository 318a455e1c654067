"""Engines, sessions and the transaction helper shared by the app, the CLI and the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from voicebook.settings import to_async_url

CONNECT_TIMEOUT_SECONDS = 3


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for any of our three databases.

    SQLite gets a busy timeout and WAL so concurrent writers wait instead of failing, and foreign keys on.
    """
    async_url = to_async_url(url)
    if async_url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_async_engine(async_url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A dead database must fail fast: the caller on the phone is waiting for an honest answer.
    if async_url.startswith("mysql"):
        kwargs.setdefault("pool_recycle", 3600)
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    elif async_url.startswith("postgresql"):
        kwargs.setdefault("connect_args", {"timeout": CONNECT_TIMEOUT_SECONDS})
    kwargs.setdefault("pool_timeout", CONNECT_TIMEOUT_SECONDS)
    return create_async_engine(async_url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session


def describe_url(url: str) -> str:
    """The URL without its password, for logs and CLI output."""
    from sqlalchemy.engine import make_url

    return make_url(to_async_url(url)).render_as_string(hide_password=True)
