"""The composition root of the HTTP service: ``create_app(settings)`` wires database, calendar and routes."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from voicebook import __version__
from voicebook.api import errors as api_errors
from voicebook.api import ops, retell, webhooks
from voicebook.api.admin import routes as admin
from voicebook.booking.reconcile.driver import run_periodically
from voicebook.booking.tenancy import OfferingCache
from voicebook.bootstrap import CalendarHandle, booking_policy, company_calendars, database, open_calendar
from voicebook.db.credentials import Sealer
from voicebook.db.session import describe_url
from voicebook.logging import configure_logging
from voicebook.settings import Settings, get_settings

log = structlog.get_logger("voicebook.app")


def create_app(settings: Settings | None = None, *, calendar: CalendarHandle | None = None) -> FastAPI:
    """Build the app; ``calendar`` lets tests inject a gateway (e.g. the sandbox over ASGITransport)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, sessionmaker = database(settings)
        handle = calendar or await open_calendar(settings, sessionmaker)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.calendar = handle.gateway
        directory = company_calendars(settings, sessionmaker, handle)
        await directory.prime()
        app.state.directory = directory
        app.state.sandbox = handle.sandbox
        app.state.offerings = OfferingCache()
        app.state.policy = booking_policy(settings)
        app.state.sealer = Sealer.from_setting(settings.secret_key)
        log.info(
            "app.started",
            version=__version__,
            database=describe_url(settings.database_url),
            calcom="sandbox" if handle.sandbox is not None else settings.calcom_base_url,
            duplicate_prevention=settings.duplicate_prevention_enabled,
        )
        if not settings.duplicate_prevention_enabled:
            log.warning("guards.disabled", detail="duplicate prevention layers 1-3 are OFF; layer 4 stays")
        if settings.retell_api_key is None:
            log.warning(
                "retell.unsigned",
                detail="VOICEBOOK_RETELL_API_KEY is unset: Retell requests are "
                + (
                    "accepted UNSIGNED (insecure dev mode)"
                    if settings.retell_insecure_dev_mode
                    else "refused"
                ),
            )
        stop = asyncio.Event()
        reconciler = None
        if settings.reconcile_interval_seconds > 0:
            reconciler = asyncio.create_task(
                run_periodically(
                    sessionmaker,
                    handle.gateway,
                    app.state.policy,
                    interval_seconds=settings.reconcile_interval_seconds,
                    owner=f"{socket.gethostname()[:40]}:{os.getpid()}",
                    stop=stop,
                    deadline_seconds=settings.reconcile_deadline_seconds,
                    retention_hours=settings.attempt_retention_hours,
                    directory=directory,
                ),
                name="voicebook-reconciler",
            )
        try:
            yield
        finally:
            stop.set()
            if reconciler is not None:
                await reconciler
            await directory.aclose()
            if calendar is None:
                await handle.aclose()
            await engine.dispose()

    app = FastAPI(title="voicebook", version=__version__, lifespan=lifespan)
    api_errors.install(app)
    app.include_router(ops.router)
    app.include_router(retell.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    return app
