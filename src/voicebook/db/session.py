"""Engines, sessions and the transaction helper shared by the app, the CLI and the tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from voicebook.db.lean import LeanConnection, lean_transaction
from voicebook.settings import to_async_url

CONNECT_TIMEOUT_SECONDS = 3
# A pooled connection used this recently is not pinged again on check-out (HikariCP's
# ``aliveBypassWindowMs``, 500 ms by default, does the same): under load every request would otherwise
# pay a ``BEGIN; ROLLBACK`` round trip per transaction for a connection that just worked. A server
# that dies within the window fails that one transaction like any mid-request loss (an honest
# ``upstream_error``; SQLAlchemy then invalidates the whole pool), and an idle pool is pinged as before.
ALIVE_BYPASS_SECONDS = 0.5
_USED_AT = "voicebook_used_at"


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
    ping = kwargs.pop("pool_pre_ping", True)
    # A dead database must fail fast: the caller on the phone is waiting for an honest answer.
    if async_url.startswith("mysql"):
        kwargs.setdefault("pool_recycle", 3600)
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    elif async_url.startswith("postgresql"):
        kwargs.setdefault("connect_args", {"timeout": CONNECT_TIMEOUT_SECONDS})
    kwargs.setdefault("pool_timeout", CONNECT_TIMEOUT_SECONDS)
    # The connection checked in last goes out first: at a trickle of calls one connection stays in use
    # (inside the ping window) instead of each pooled connection in turn going idle past it and paying a
    # ``BEGIN; SELECT; ROLLBACK`` ping on its next check-out; the spare ones idle (and are pinged) alone.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(async_url, **kwargs)
    if ping:
        ping_unless_recently_used(engine)
    return engine


def ping_unless_recently_used(engine: AsyncEngine, window: float | None = None) -> None:
    """Pre-ping on check-out, skipped for a connection checked in (or opened) less than ``window`` ago.

    The same check as SQLAlchemy's ``pool_pre_ping`` (the dialect's ping; a disconnect invalidates the
    pool and the check-out is retried on a new connection), minus the round trip for a connection that
    was alive a moment ago.
    """
    dialect = engine.sync_engine.dialect
    bypass = ALIVE_BYPASS_SECONDS if window is None else window
    driver_error: Any = dialect.loaded_dbapi.Error

    def mark(_dbapi_conn: Any, record: Any, *_: Any) -> None:
        record.info[_USED_AT] = time.monotonic()

    def check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        used_at = record.info.get(_USED_AT)
        if used_at is not None and time.monotonic() - used_at < bypass:
            return
        try:
            alive = dialect.do_ping(dbapi_conn)
        except driver_error as err:
            if dialect.is_disconnect(err, dbapi_conn, None):
                raise exc.InvalidatePoolError() from err
            raise
        if not alive:
            raise exc.InvalidatePoolError()

    event.listen(engine.sync_engine, "connect", mark)
    event.listen(engine.sync_engine, "checkin", mark)
    event.listen(engine.sync_engine, "checkout", check)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session


def core_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AbstractAsyncContextManager[LeanConnection]:
    """One transaction on a pooled connection of the sessionmaker's engine: commit on success, roll back
    on any exception, like :func:`transaction`.

    For the booking path's two transactions, which run Core statements only: neither the ORM session
    (execution options merged, state tracking) nor ``Connection.execute``'s per-statement machinery buys
    anything there (see ``db.lean``). ``lean_transaction``'s context manager itself is returned, not
    wrapped in another generator: one layer fewer to enter and leave on every booking.
    """
    engine: AsyncEngine = sessionmaker.kw["bind"]
    return lean_transaction(engine)


def describe_url(url: str) -> str:
    """The URL without its password, for logs and CLI output."""
    from sqlalchemy.engine import make_url

    return make_url(to_async_url(url)).render_as_string(hide_password=True)
