"""A real uvicorn serving the real app in a thread, on a migrated SQLite with the example tenants.

For tests that need sockets (slow clients) or a live OpenAPI document (schemathesis); the Cal.com side
is the built-in sandbox, as in ``make run``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from tests.e2e.harness import TENANTS

from voicebook.app import create_app
from voicebook.db import migrate
from voicebook.db.session import make_engine, make_sessionmaker, transaction
from voicebook.db.tenants import load_tenants, parse_tenants
from voicebook.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load_tenants(url: str) -> None:
    engine = make_engine(url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            await load_tenants(session, parse_tenants(TENANTS))
    finally:
        await engine.dispose()


@contextmanager
def live_server(settings: Settings, **uvicorn_options: Any) -> Iterator[str]:
    """Serve ``create_app(settings)``; yields the base URL, stops the server on exit."""
    migrate.upgrade(settings.database_url, "head")
    asyncio.run(_load_tenants(settings.database_url))
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        **uvicorn_options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
