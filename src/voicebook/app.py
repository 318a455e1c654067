"""The composition root of the HTTP service: ``create_app(settings)`` wires database, calendar and routes."""

from __future__ import annotations

import voicebook.preload  # noqa: F401  first: it decides how httpx and structlog are imported

# isort: split
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
from voicebook.api.admin import assets
from voicebook.api.admin import auth as admin_auth
from voicebook.api.admin import routes as admin
from voicebook.api.limits import BodyLimitsMiddleware
from voicebook.api.security_headers import SecurityHeadersMiddleware
from voicebook.api.throttle import LoginThrottle, LoginThrottleMiddleware
from voicebook.booking.reconcile.driver import run_periodically
from voicebook.booking.tenancy import OfferingCache
from voicebook.bootstrap import CalendarHandle, booking_policy, company_calendars, database, open_calendar
from voicebook.db.credentials import Sealer, SecretsByNumber
from voicebook.db.session import describe_url
from voicebook.logging import configure_logging, register_secrets
from voicebook.settings import Settings, get_settings

log = structlog.get_logger("voicebook.app")


def create_app(settings: Settings | None = None, *, calendar: CalendarHandle | None = None) -> FastAPI:
    """Build the app; ``calendar`` lets tests inject a gateway (e.g. the sandbox over ASGITransport)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    register_secrets(settings.secret_values())

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
        app.state.number_secrets = SecretsByNumber(sessionmaker, app.state.sealer)
        log.info(
            "app.started",
            version=__version__,
            database=describe_url(settings.database_url),
            calcom="sandbox" if handle.sandbox is not None else settings.calcom_base_url,
            duplicate_prevention=settings.duplicate_prevention_enabled,
        )
        if settings.blank_secrets:
            names = ", ".join(f"VOICEBOOK_{name.upper()}" for name in settings.blank_secrets)
            log.warning("settings.blank_secrets", detail=f"{names} set but empty: treated as unset")
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

    docs = settings.api_docs_enabled  # the schema maps every door; public only when asked for
    app = FastAPI(
        title="voicebook",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    api_errors.install(app)
    # Added innermost first: security headers wrap everything, then the body limits, then throttling.
    app.add_middleware(
        LoginThrottleMiddleware,
        throttle=LoginThrottle(settings.login_attempts_per_minute),
        cookie_name=admin_auth.COOKIE,
    )
    app.add_middleware(
        BodyLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        read_timeout_seconds=settings.body_read_timeout_seconds,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.router.routes.append(retell.route)  # serves what retell.router's route describes (see there)
    app.include_router(ops.router)
    app.include_router(retell.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(assets.router)
    if settings.uses_sandbox and settings.sandbox_control_enabled:
        from voicebook.calcom.sandbox.control import forward_route

        app.router.routes.append(forward_route())  # the in-process sandbox's /_sandbox/... API
    return app
