"""Dependencies as Annotated aliases; everything comes from ``app.state`` built in the lifespan.

They are ``async def`` although they do no I/O: FastAPI runs a plain ``def`` dependency in its thread
pool, one thread hop per dependency and request, which cost more than the whole lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.api.functions import FunctionDeps
from voicebook.api.limits import BodyError, loads_object
from voicebook.booking.ports import CalendarDirectory, SingleCalendar
from voicebook.calcom.webhooks import signature_matches
from voicebook.db.credentials import (
    CompanySecrets,
    Sealer,
    SecretKeyError,
    SecretsByNumber,
    secrets_by_slug,
)
from voicebook.retell.signature import verify_signature
from voicebook.settings import Settings

log = structlog.get_logger("voicebook.api")
# A company's slug as the tenants file allows it (anything else is a 422, never a lookup).
CompanySlug = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


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


async def _company_secrets(
    request: Request, *, number: str | None = None, slug: str | None = None
) -> CompanySecrets | None:
    """The stored credentials of the company owning ``number`` (or ``slug``), if it has any."""
    sealer: Sealer | None = getattr(request.app.state, "sealer", None)
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        if number is not None:
            by_number: SecretsByNumber = request.app.state.number_secrets
            return await by_number.get(number)
        if slug is not None:
            async with sessionmaker() as session:
                return await secrets_by_slug(session, slug, sealer)
    except SecretKeyError as exc:  # cannot open the key that would check it: refuse, never guess
        log.error("credentials.unreadable", error=exc.message)
        raise HTTPException(status_code=401) from None
    except (SQLAlchemyError, OSError) as exc:
        # Database down: only the global key can be checked (a company key then gets 401 and Retell
        # retries); the endpoint itself answers its honest upstream_error, never a 500.
        log.warning("credentials.lookup_failed", error=type(exc).__name__)
    return None


def _called_number(data: dict[str, Any] | None) -> str | None:
    """``call.to_number`` of a Retell body, read before the signature is checked (it picks the key)."""
    if data is None:
        return None  # the signature check (and then the parse error) answer this body
    call = data.get("call")
    number = call.get("to_number") if isinstance(call, dict) else None
    return number if isinstance(number, str) and 0 < len(number) <= 255 else None


async def verified_calcom_company_body(request: Request, slug: CompanySlug) -> SignedBody:
    """``POST /calcom/webhook/{slug}``: checked with that company's own webhook secret only.

    An unknown slug, or a company without its own secret, gets the same bare 401 as a bad signature, so
    the endpoint does not tell which companies exist.
    """
    raw = await request.body()
    company = await _company_secrets(request, slug=slug[:100])
    secret = company.webhook_secret if company is not None else None
    if secret is None or not signature_matches(
        raw, request.headers.get("x-cal-signature-256"), secret.get_secret_value()
    ):
        log.warning("calcom.signature_rejected", company=slug[:100])
        raise HTTPException(status_code=401)
    settings: Settings = request.app.state.settings
    body = loads_object(raw, settings.max_json_depth)
    request.state.company_id = company.company_id if company is not None else None
    return SignedBody(raw, body)


async def verified_retell_body(request: Request) -> SignedBody:
    """Check ``X-Retell-Signature`` over the raw bytes, then parse; 401 says nothing more.

    The key is the one of the company that owns ``call.to_number`` when it has its own Retell key (then
    only that key is accepted: another company's key, or the global one, gets 401); else the global key.
    """
    settings: Settings = request.app.state.settings
    raw = await request.body()
    # Parsed once, before the check (the called number picks the key); a parse error is only told to a
    # client whose signature passed, as when the parse came after the check.
    parsed: dict[str, Any] | BodyError
    try:
        parsed = loads_object(raw, settings.max_json_depth)
    except BodyError as exc:
        parsed = exc
    number = _called_number(parsed if isinstance(parsed, dict) else None)
    company = await _company_secrets(request, number=number) if number else None
    if company is not None and company.retell_api_key is not None:
        if not verify_signature(raw, request.headers.get("x-retell-signature"), company.retell_api_key):
            log.warning("retell.signature_rejected", path=request.url.path, company=company.slug)
            raise HTTPException(status_code=401)
    elif settings.retell_api_key is not None:
        if not verify_signature(raw, request.headers.get("x-retell-signature"), settings.retell_api_key):
            log.warning("retell.signature_rejected", path=request.url.path)
            raise HTTPException(status_code=401)
    elif not settings.retell_insecure_dev_mode:
        log.warning("retell.unsigned_refused", path=request.url.path)
        raise HTTPException(status_code=401)
    if isinstance(parsed, BodyError):
        raise parsed
    return SignedBody(raw, parsed)


async def get_function_deps(request: Request) -> FunctionDeps:
    """What a Retell function call needs, as one dependency (each dependency costs a resolution)."""
    state = request.app.state
    directory: CalendarDirectory | None = getattr(state, "directory", None)
    return FunctionDeps(
        state.sessionmaker,
        state.calendar,
        state.policy,
        state.offerings,
        directory if directory is not None else SingleCalendar(state.calendar),
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
RetellBody = Annotated[SignedBody, Depends(verified_retell_body)]
CalcomBody = Annotated[SignedBody, Depends(verified_calcom_body)]
CalcomCompanyBody = Annotated[SignedBody, Depends(verified_calcom_company_body)]
FunctionDepsDep = Annotated[FunctionDeps, Depends(get_function_deps)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
