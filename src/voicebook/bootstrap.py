"""The composition root shared by the app and the CLI: the booking policy, the calendar, the database.

Only this module (with ``app.py`` and ``cli/``) knows both ends: settings on one side, the domain's
collaborators on the other. The calendar is real Cal.com when a key is set, otherwise the built-in sandbox.

In sandbox mode the sandbox runs in this process behind ``httpx.ASGITransport``: the real client speaks
real Cal.com v2 HTTP to it, no socket and no account needed. It holds an event type for every service
of the loaded tenants (read at start-up, and again whenever a request names an event type it does not
know, so a company loaded while the server runs is bookable at once), with working hours that give free
slots on the coming days.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking.policy import BookingPolicy, GuardPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.calcom.budget import (
    PER_SECONDS,
    BudgetedTransport,
    BudgetStore,
    DatabaseBudget,
    LeasedBudget,
    RedisBudget,
    budget_key,
)
from voicebook.calcom.client import CalcomClient
from voicebook.calcom.gateway import CalcomGateway
from voicebook.calcom.registry import CalendarRegistry
from voicebook.calcom.transport import build_http_client
from voicebook.db.credentials import Sealer
from voicebook.db.queries import all_services
from voicebook.db.session import make_engine, make_sessionmaker
from voicebook.settings import Settings

if TYPE_CHECKING:
    from voicebook.calcom.sandbox import Sandbox, SandboxEventType

log = structlog.get_logger("voicebook.app")
SANDBOX_BASE_URL = "https://api.cal.com"
SANDBOX_KEY = "cal_sandbox_local"


def booking_policy(settings: Settings) -> BookingPolicy:
    """The domain's knobs, read from settings once, so the domain never reads the environment."""
    return BookingPolicy(
        guards=GuardPolicy(
            enabled=settings.duplicate_prevention_enabled,
            stale_booking_seconds=settings.stale_booking_seconds,
            clock_skew_seconds=settings.clock_skew_seconds,
        ),
        fallback_email_template=settings.fallback_email_template,
        lock_seconds=settings.attempt_lock_seconds,
        resolve_budget_seconds=settings.resolve_budget_seconds,
    )


def database(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """The engine and its session factory; whoever opens them disposes of the engine."""
    engine = make_engine(settings.database_url)
    return engine, make_sessionmaker(engine)


@dataclass
class CalendarHandle:
    gateway: CalendarGateway
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    sandbox: Sandbox | None = None
    # How the companies' own Cal.com accounts are reached (tests: the sandbox's accounts in process).
    company_transport: httpx.AsyncBaseTransport | None = None
    # The worker's one rate budget (its leases and its store connection), shared with the registry.
    budget: LeasedBudget | None = None

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()


def rate_budget(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> LeasedBudget:
    """Where each Cal.com credential's request budget lives: Redis when configured, else the database;
    this worker leases tokens from it (calcom/budget.py) rather than asking it for every request.

    Its capacity is ``VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE``, refilled over a minute."""
    capacity, per_seconds = settings.calcom_rate_limit_per_minute, PER_SECONDS
    store: BudgetStore
    if settings.redis_url:
        store = RedisBudget(settings.redis_url, capacity=capacity, per_seconds=per_seconds)
    else:
        store = DatabaseBudget(sessionmaker, capacity=capacity, per_seconds=per_seconds)
    return LeasedBudget(store)


def company_calendars(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], handle: CalendarHandle
) -> CalendarRegistry:
    """The per-company directory (issue 16): a company's own Cal.com, else ``handle``'s global gateway."""
    return CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=Sealer.from_setting(settings.secret_key),
        fallback=handle.gateway,
        default_base_url=settings.calcom_base_url,
        timeout=settings.calcom_timeout_seconds,
        transport=handle.company_transport,
        budget=handle.budget if handle.budget is not None else rate_budget(settings, sessionmaker),
    )


def sandbox_gateway(sandbox: Sandbox, *, timeout: float = 10.0) -> tuple[CalcomGateway, httpx.AsyncClient]:
    """The real client and gateway, talking to ``sandbox`` in process."""
    http = build_http_client(
        SANDBOX_BASE_URL, SANDBOX_KEY, timeout, transport=httpx.ASGITransport(app=sandbox.app)
    )
    return CalcomGateway(CalcomClient(http, on_response=metrics.observe_calcom)), http


async def open_calendar(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> CalendarHandle:
    if settings.calcom_api_key is not None:
        key = settings.calcom_api_key.get_secret_value()
        # The global key has its request budget too, shared by all workers (issue 16), and by a company
        # whose own key is this one: the bucket is named by the normalised API root and the key only.
        budget = rate_budget(settings, sessionmaker)
        transport = BudgetedTransport(
            httpx.AsyncHTTPTransport(), budget, budget_key(settings.calcom_base_url, key)
        )
        http = build_http_client(
            settings.calcom_base_url, key, settings.calcom_timeout_seconds, transport=transport
        )
        gateway = CalcomGateway(CalcomClient(http, on_response=metrics.observe_calcom))
        closers: list[Callable[[], Awaitable[None]]] = [http.aclose, budget.aclose]
        return CalendarHandle(gateway, closers, budget=budget)
    # Lazy: with a real Cal.com key (every production worker) the emulator is never used, and importing
    # it would keep its modules in memory for nothing.
    from voicebook.calcom.sandbox import Sandbox, event_type_from_service

    secret = settings.calcom_webhook_secret.get_secret_value() if settings.calcom_webhook_secret else None

    async def configured_event_types() -> list[SandboxEventType]:
        async with sessionmaker() as session:
            services = await all_services(session)
        return [
            event_type_from_service(
                service.event_type_id,
                service.name,
                service.duration_minutes,
                service.round_robin,
                company.timezone,
            )
            for service, company in services
        ]

    sandbox = Sandbox(
        state_file=settings.sandbox_state_file,
        webhook_url=settings.sandbox_webhook_url,
        webhook_secret=secret,
        control_enabled=settings.sandbox_control_enabled,
        api_key=SANDBOX_KEY,
        event_type_source=configured_event_types,
    )
    event_types = await configured_event_types()
    for event_type in event_types:
        sandbox.add_event_type(event_type)
    log.info(
        "calcom.sandbox",
        event_types=len(event_types),
        state_file=str(settings.sandbox_state_file) if settings.sandbox_state_file else None,
        control_api=settings.sandbox_control_enabled,
        detail="no VOICEBOOK_CALCOM_API_KEY: built-in sandbox",
    )
    gateway, http = sandbox_gateway(sandbox, timeout=settings.calcom_timeout_seconds)
    return CalendarHandle(gateway, [http.aclose, sandbox.drain_webhooks], sandbox=sandbox)
