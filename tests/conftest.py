"""Shared fixtures: the ``db_url`` fixture runs a test on SQLite, PostgreSQL and MariaDB.

Each backend's schema is built once per session by running the Alembic migrations, in a scratch database
of the session's own on PostgreSQL and MariaDB (created beside the configured one, dropped at the end),
and every test starts from empty tables. A backend whose
server is absent is skipped loudly, unless VOICEBOOK_TEST_REQUIRE_ALL_DATABASES=1 (CI), where that fails.

For scripts/mutation, which runs a pytest session per mutant in forked children: the scratch databases are
named VOICEBOOK_TEST_SCRATCH_PREFIX (default ``voicebook_test``) plus the process id, so the script can drop
what a child killed by its timeout left behind, and a backend found unreachable is also appended to the
file VOICEBOOK_TEST_UNREACHABLE_LOG, so the script can tell a run whose verdicts a server outage decided.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from voicebook.db import migrate
from voicebook.db.base import Base
from voicebook.db.session import describe_url, make_engine, make_sessionmaker
from voicebook.settings import to_async_url

DEFAULT_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
}
BACKENDS = ("sqlite", "postgresql", "mariadb")
_unavailable: dict[str, str] = {}


def _configured_urls(tmp_root: Path) -> dict[str, str]:
    urls = {"sqlite": f"sqlite:///{tmp_root / 'voicebook-test.db'}", **DEFAULT_URLS}
    for item in filter(None, os.environ.get("VOICEBOOK_TEST_DATABASE_URLS", "").split(",")):
        name, _, url = item.partition("=")
        urls[name.strip()] = url.strip()
    return urls


async def _reachable(url: str) -> str | None:
    engine = make_engine(url)
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await engine.dispose()
    return None


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _configured_urls(tmp_path_factory.mktemp("db"))


async def _scratch_database(url: str, *, drop: bool) -> str:
    """A database of this test session's own beside the configured one, so parallel runs never collide."""
    base = make_url(to_async_url(url))
    name = f"{os.environ.get('VOICEBOOK_TEST_SCRATCH_PREFIX', 'voicebook_test')}_{os.getpid()}"
    engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            quoted = f'"{name}"' if base.get_backend_name() == "postgresql" else f"`{name}`"
            await _bound_lock_waits(conn)
            await conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
            if not drop:
                await conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        await engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_backends(database_urls: dict[str, str]) -> Iterator[dict[str, str]]:
    """Backends whose schema is at head for this session (built lazily by ``_migrated``)."""
    ready: dict[str, str] = {}
    yield ready
    for backend, url in ready.items():
        if backend == "sqlite":
            migrate.downgrade(url, "base")
        else:
            asyncio.run(_scratch_database(database_urls[backend], drop=True))


def _migrated(backend: str, database_urls: dict[str, str], ready: dict[str, str]) -> str:
    if backend in ready:
        return ready[backend]
    url = database_urls[backend]
    if backend in _unavailable:
        pytest.skip(f"{backend} unavailable: {_unavailable[backend]}")
    problem = asyncio.run(_reachable(url))
    if problem is not None:
        _unavailable[backend] = f"{describe_url(url)} ({problem})"
        message = f"DATABASE BACKEND {backend.upper()} IS NOT REACHABLE at {describe_url(url)}: {problem}"
        if log := os.environ.get("VOICEBOOK_TEST_UNREACHABLE_LOG"):
            with open(log, "a", encoding="utf-8") as unreachable:
                unreachable.write(f"pid {os.getpid()}: {message}\n")
        if os.environ.get("VOICEBOOK_TEST_REQUIRE_ALL_DATABASES") == "1":
            pytest.fail(message + " (VOICEBOOK_TEST_REQUIRE_ALL_DATABASES=1)", pytrace=False)
        pytest.skip(message)
    if backend != "sqlite":
        url = asyncio.run(_scratch_database(url, drop=False))
    migrate.downgrade(url, "base")
    migrate.upgrade(url, "head")
    ready[backend] = url
    return url


async def _bound_lock_waits(conn: AsyncConnection) -> None:
    """A transaction that a failing test (or a mutant, scripts/mutation) left open holds its locks until
    its process ends: the next DELETE or DROP DATABASE waiting for them fails after 10 s instead of hanging
    (PostgreSQL waits for ever; MariaDB 50 s for a row lock, a day for a table's metadata lock)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET lock_timeout = '10s'"))
    elif conn.dialect.name in ("mysql", "mariadb"):
        await conn.execute(text("SET SESSION innodb_lock_wait_timeout = 10, lock_wait_timeout = 10"))


async def wipe(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await _bound_lock_waits(conn)
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, database_urls: dict[str, str], migrated_backends: dict[str, str]
) -> str:
    """A migrated database with empty tables, once per backend."""
    url = _migrated(request.param, database_urls, migrated_backends)
    engine = make_engine(url)

    async def _wipe() -> None:
        try:
            await wipe(engine)
        finally:
            await engine.dispose()

    asyncio.run(_wipe())
    return url


@pytest_asyncio.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unavailable:
        terminalreporter.section("DATABASE BACKENDS SKIPPED", sep="!", red=True, bold=True)
        for backend, why in _unavailable.items():
            terminalreporter.write_line(f"{backend}: {why}", red=True, bold=True)
