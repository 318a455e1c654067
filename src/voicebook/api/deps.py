"""Dependencies as Annotated aliases; everything comes from ``app.state`` built in the lifespan.

They are ``async def`` although they do no I/O: FastAPI runs a plain ``def`` dependency in its thread
pool, one thread hop per dependency and request, which cost more than the whole lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.api.limits import loads_object
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.tenancy import OfferingCache
from voicebook.calcom.webhooks import signature_matches
from voicebook.retell.signature import verify_signature
from voicebook.settings import Settings

log = structlog.get_logger("voicebook.api")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def get_calendar(request: Request) -> CalendarGateway:
    calendar: CalendarGateway = request.app.state.calendar
    return calendar


async def get_policy(request: Request) -> BookingPolicy:
    policy: BookingPolicy = request.app.state.policy
    return policy


@dataclass(frozen=True)
class SignedBody:
    raw: bytes
    data: dict[str, Any]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, rolled back when it raises.

    The endpoint (and the domain functions it calls) only flush; this dependency owns the commit. The
    write-ahead booking and change attempts are the documented exception: they take the sessionmaker,
    because their intent must be committed before Cal.com is called.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


async def verified_calcom_body(request: Request) -> SignedBody:
    """Check ``X-Cal-Signature-256`` over the raw bytes with the configured secret, then parse."""
    settings: Settings = request.app.state.settings
    raw = await request.body()
    secret = settings.calcom_webhook_secret
    if secret is None or not secret.get_secret_value():
        log.warning("calcom.webhook_refused", detail="VOICEBOOK_CALCOM_WEBHOOK_SECRET is unset")
        raise HTTPException(status_code=401)
    if not signature_matches(raw, request.headers.get("x-cal-signature-256"), secret.get_secret_value()):
        log.warning("calcom.signature_rejected")
        raise HTTPException(status_code=401)
    return SignedBody(raw, loads_object(raw, settings.max_json_depth))


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


async def get_offerings(request: Request) -> OfferingCache:
    cache: OfferingCache = request.app.state.offerings
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
CalendarDep = Annotated[CalendarGateway, Depends(get_calendar)]
PolicyDep = Annotated[BookingPolicy, Depends(get_policy)]
OfferingsDep = Annotated[OfferingCache, Depends(get_offerings)]
RetellBody = Annotated[SignedBody, Depends(verified_retell_body)]
CalcomBody = Annotated[SignedBody, Depends(verified_calcom_body)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
