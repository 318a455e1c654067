"""Dependencies as Annotated aliases; everything comes from ``app.state`` built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.api.limits import loads_object
from voicebook.booking.policy import BookingPolicy, GuardPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.tenancy import OfferingCache
from voicebook.retell.signature import verify_signature
from voicebook.settings import Settings

log = structlog.get_logger("voicebook.api")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


def get_calendar(request: Request) -> CalendarGateway:
    calendar: CalendarGateway = request.app.state.calendar
    return calendar


def policy_from(settings: Settings) -> BookingPolicy:
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


def get_policy(request: Request) -> BookingPolicy:
    policy: BookingPolicy | None = getattr(request.app.state, "policy", None)
    return policy or policy_from(request.app.state.settings)


@dataclass(frozen=True)
class SignedBody:
    raw: bytes
    data: dict[str, Any]


async def verified_retell_body(request: Request) -> SignedBody:
    """Check ``X-Retell-Signature`` over the raw bytes, then parse; 401 says nothing more."""
    settings: Settings = request.app.state.settings
    raw = await request.body()
    if settings.retell_api_key is not None:
        if not verify_signature(raw, request.headers.get("x-retell-signature"), settings.retell_api_key):
            log.warning("retell.signature_rejected", path=request.url.path)
            raise HTTPException(status_code=401)
    elif not settings.retell_insecure_dev_mode:
        log.warning("retell.unsigned_refused", path=request.url.path)
        raise HTTPException(status_code=401)
    return SignedBody(raw, loads_object(raw, settings.max_json_depth))


def get_offerings(request: Request) -> OfferingCache:
    cache: OfferingCache | None = getattr(request.app.state, "offerings", None)
    if cache is None:
        cache = request.app.state.offerings = OfferingCache()
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
CalendarDep = Annotated[CalendarGateway, Depends(get_calendar)]
PolicyDep = Annotated[BookingPolicy, Depends(get_policy)]
OfferingsDep = Annotated[OfferingCache, Depends(get_offerings)]
RetellBody = Annotated[SignedBody, Depends(verified_retell_body)]
