"""The calendar of every company: one Cal.com client per credential, composed for the domain.

``CalendarRegistry`` implements ``booking.ports.CalendarDirectory``. A company without its own
credentials gets the global gateway, as before issue 16. A company with its own gets a gateway over a
client kept for *its* credential and base URL — never shared with another company, so a booking for
company B cannot go out with company A's key — with a bounded connection pool, and closed when unused
for ``idle_seconds`` or when more than ``max_clients`` are open (least recently used first).

A credential Cal.com refuses (401 on an API key, a refused OAuth refresh, a 401 after one refresh) marks
the company *disconnected* in the database, sets ``voicebook_company_disconnected{company=…}`` and logs
once; from then on its gateway answers ``CalendarDisconnected`` at once, without a request, until the
operator loads a new credential (``tenants load`` reconnects it). Nothing retries in a loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import httpx
import structlog
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking.errors import CalendarDisconnected, CalendarRejected, CalendarUnavailable
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.types import BookingQuery, BookingRequest, CalendarBooking
from voicebook.calcom.budget import Budget, BudgetedTransport, budget_key
from voicebook.calcom.client import CalcomClient
from voicebook.calcom.gateway import CalcomGateway
from voicebook.calcom.oauth import CredentialRefused, OAuthBearer, TokenGrant, exchange_refresh_token
from voicebook.calcom.transport import build_http_client
from voicebook.db.base import utc_now
from voicebook.db.credentials import (
    DISCONNECTED,
    CompanySecrets,
    Sealer,
    SecretKeyError,
    connection_states,
    mark_state,
    save_tokens,
    secrets_of,
)
from voicebook.db.models import CompanyCredential
from voicebook.memo import Memo

log = structlog.get_logger("voicebook.calcom")
T = TypeVar("T")
# Per credential: Cal.com allows 120 requests a minute per key, so a handful of connections is plenty.
POOL_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4, keepalive_expiry=30.0)


@dataclass
class _Kept:
    http: httpx.AsyncClient
    client: CalcomClient
    gateway: CalcomGateway
    last_used: float


class CompanyGateway:
    """A company's gateway: turns a refused credential into ``CalendarDisconnected`` (and marks it)."""

    def __init__(self, inner: CalendarGateway, company: CompanySecrets, registry: CalendarRegistry) -> None:
        self._inner = inner
        self._company = company
        self._registry = registry

    def __repr__(self) -> str:
        return f"CompanyGateway(company={self._company.slug!r})"

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except CredentialRefused as exc:
            await self._registry.disconnect(self._company, exc.reason)
            raise CalendarDisconnected(f"company {self._company.slug}: {exc.reason}") from None
        except CalendarRejected as exc:
            if exc.status != 401:
                raise
            await self._registry.disconnect(self._company, f"Cal.com answered 401 ({exc.code})")
            raise CalendarDisconnected(f"company {self._company.slug}: credential refused") from None

    async def find_slots(self, event_type_id: int, start: datetime, end: datetime) -> list[datetime]:
        return await self._guard(self._inner.find_slots(event_type_id, start, end))

    async def create_booking(self, request: BookingRequest) -> CalendarBooking:
        return await self._guard(self._inner.create_booking(request))

    async def get_booking(self, uid: str) -> CalendarBooking | None:
        return await self._guard(self._inner.get_booking(uid))

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        return await self._guard(self._inner.find_bookings(query))

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking:
        return await self._guard(self._inner.cancel_booking(uid, reason))

    async def reschedule_booking(
        self, uid: str, new_start: datetime, reason: str | None = None
    ) -> CalendarBooking:
        return await self._guard(self._inner.reschedule_booking(uid, new_start, reason))


class DisconnectedGateway:
    """What a disconnected company's callers get: a clear refusal, no request to Cal.com at all."""

    def __init__(self, slug: str) -> None:
        self._slug = slug

    def __repr__(self) -> str:
        return f"DisconnectedGateway(company={self._slug!r})"

    def _refuse(self) -> CalendarDisconnected:
        return CalendarDisconnected(f"company {self._slug} is disconnected from its calendar")

    async def find_slots(self, event_type_id: int, start: datetime, end: datetime) -> list[datetime]:
        raise self._refuse()

    async def create_booking(self, request: BookingRequest) -> CalendarBooking:
        raise self._refuse()

    async def get_booking(self, uid: str) -> CalendarBooking | None:
        raise self._refuse()

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        raise self._refuse()

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking:
        raise self._refuse()

    async def reschedule_booking(
        self, uid: str, new_start: datetime, reason: str | None = None
    ) -> CalendarBooking:
        raise self._refuse()


class CalendarRegistry:
    """``CalendarDirectory`` over Cal.com: the global gateway, or a kept client per company credential."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        sealer: Sealer | None,
        fallback: CalendarGateway,
        default_base_url: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: Callable[[str, int | str, float], None] | None = metrics.observe_calcom,
        max_clients: int = 256,
        idle_seconds: float = 300.0,
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        budget: Budget | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._budget = budget
        self._sealer = sealer
        self._fallback = fallback
        self._default_base_url = default_base_url
        self._timeout = timeout
        self._transport = transport
        self._on_response = on_response
        self._max_clients = max_clients
        self._idle_seconds = idle_seconds
        self._ttl = ttl_seconds
        self._clock = clock
        self._secrets: Memo[int, CompanySecrets | None] = Memo(ttl_seconds, clock)
        self._clients: OrderedDict[tuple[str, ...], _Kept] = OrderedDict()
        self._token_clients: dict[str, httpx.AsyncClient] = {}
        self._tokens: dict[int, TokenGrant] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._swept = clock()
        self._gauged: set[str] = set()

    def __repr__(self) -> str:
        return f"CalendarRegistry(clients={len(self._clients)})"

    @property
    def open_clients(self) -> int:
        return len(self._clients)

    # --- the port -----------------------------------------------------------------------------------

    async def for_company(self, company_id: int | None) -> CalendarGateway:
        if company_id is None:
            return self._fallback
        company = await self._company(company_id)
        if company is None or not company.has_calcom:
            return self._fallback
        if company.state == DISCONNECTED:
            return DisconnectedGateway(company.slug)
        return CompanyGateway(await self._gateway(company), company, self)

    async def is_disconnected(self, company_id: int) -> bool:
        company = await self._company(company_id)
        return company is not None and company.state == DISCONNECTED

    # --- lifecycle ----------------------------------------------------------------------------------

    async def prime(self) -> None:
        """Start-up: the gauge shows every company with its own credentials (0 connected, 1 not)."""
        async with self._sessionmaker() as session:
            for slug, state, _, auth in await connection_states(session):
                if auth != "none":
                    self._gauge(slug, state == DISCONNECTED)

    async def aclose(self) -> None:
        kept, self._clients = list(self._clients.values()), OrderedDict()
        for item in kept:
            await item.http.aclose()
        tokens, self._token_clients = list(self._token_clients.values()), {}
        for http in tokens:
            await http.aclose()
        close = getattr(self._budget, "aclose", None)
        if close is not None:
            await close()

    # --- internals ----------------------------------------------------------------------------------

    async def _company(self, company_id: int) -> CompanySecrets | None:
        asked_at = self._secrets.now()
        hit = self._secrets.fresh(company_id)
        if hit is not None:
            return hit[0]
        try:
            async with self._sessionmaker() as session:
                company = await secrets_of(session, company_id, self._sealer)
        except SecretKeyError as exc:
            log.error("credentials.unreadable", company_id=company_id, error=exc.message)
            raise CalendarUnavailable(exc.message) from None
        self._secrets.keep(company_id, company, asked_at)
        if company is not None and company.has_calcom:  # another worker's verdict, or a reloaded key
            self._gauge(company.slug, company.state == DISCONNECTED)
        return company

    def _gauge(self, slug: str, disconnected: bool) -> None:
        """A series only for a company that is (or was) disconnected: 10 000 connected companies would
        otherwise be 10 000 series at 0 in every worker, for an alert that only asks ``> 0``."""
        if disconnected:
            self._gauged.add(slug)
            metrics.COMPANY_DISCONNECTED.labels(company=slug).set(1)
        elif slug in self._gauged or (slug,) in getattr(metrics.COMPANY_DISCONNECTED, "_metrics", {}):
            metrics.COMPANY_DISCONNECTED.labels(company=slug).set(0)

    def _base_url(self, company: CompanySecrets) -> str:
        return company.base_url or self._default_base_url

    def _key(self, company: CompanySecrets) -> tuple[str, ...]:
        base = self._base_url(company)
        if company.auth == "oauth":  # the token state is per authorisation, so per company
            return ("oauth", base, str(company.company_id), company.oauth_client_id or "")
        secret = company.api_key.get_secret_value() if company.api_key else ""
        return ("key", base, hashlib.sha256(secret.encode()).hexdigest()[:32])

    async def client_for(self, company_id: int) -> CalcomClient | None:
        """The raw client of a company's own credential (``tenants sync``); None without one."""
        company = await self._company(company_id)
        if company is None or not company.has_calcom:
            return None
        if company.state == DISCONNECTED:
            raise CalendarDisconnected(f"company {company.slug} is disconnected from its calendar")
        await self._gateway(company)
        return self._clients[self._key(company)].client

    async def _gateway(self, company: CompanySecrets) -> CalcomGateway:
        await self._sweep()
        key = self._key(company)
        kept = self._clients.get(key)
        if kept is None:
            api_key = (
                company.api_key.get_secret_value() if company.auth == "api_key" and company.api_key else None
            )
            http = build_http_client(
                self._base_url(company),
                api_key,
                self._timeout,
                transport=self._budgeted(company),
                limits=POOL_LIMITS,
            )
            if company.auth == "oauth":
                http.auth = OAuthBearer(self._token_source(company))
            client = CalcomClient(http, on_response=self._on_response)
            kept = _Kept(http, client, CalcomGateway(client), self._clock())
            self._clients[key] = kept
            while len(self._clients) > self._max_clients:
                _, oldest = self._clients.popitem(last=False)
                await oldest.http.aclose()
        self._clients.move_to_end(key)
        kept.last_used = self._clock()
        return kept.gateway

    def _budget_key(self, company: CompanySecrets) -> str:
        """The credential's bucket: an API key's is the one ``bootstrap`` gives the same key as the global
        key (one key, one Cal.com limit, one bucket); OAuth's is the company's authorisation."""
        base = self._base_url(company)
        if company.auth == "oauth":
            return budget_key(
                base, "\x00".join(("oauth", str(company.company_id), company.oauth_client_id or ""))
            )
        return budget_key(base, company.api_key.get_secret_value() if company.api_key else "")

    def _budgeted(self, company: CompanySecrets) -> httpx.AsyncBaseTransport | None:
        """The credential's transport, behind its shared rate budget when there is one."""
        if self._budget is None:
            return self._transport
        inner = self._transport or httpx.AsyncHTTPTransport(limits=POOL_LIMITS)
        return BudgetedTransport(
            inner, self._budget, self._budget_key(company), owns_inner=self._transport is None
        )

    async def _sweep(self) -> None:
        now = self._clock()
        if now - self._swept < min(30.0, self._idle_seconds):
            return
        self._swept = now
        for key in [k for k, v in self._clients.items() if now - v.last_used > self._idle_seconds]:
            await self._clients.pop(key).http.aclose()

    def _token_source(self, company: CompanySecrets) -> Callable[[str | None], Awaitable[SecretStr]]:
        async def source(failed: str | None) -> SecretStr:
            return await self._token(company, failed)

        return source

    def _token_http(self, base_url: str) -> httpx.AsyncClient:
        http = self._token_clients.get(base_url)
        if http is None:
            http = build_http_client(base_url, None, self._timeout, transport=self._transport)
            self._token_clients[base_url] = http
        return http

    async def _token(self, company: CompanySecrets, failed: str | None) -> SecretStr:
        """An access token for ``company``: cached, else from the database, else refreshed (and stored).

        The refresh runs under a row lock on the company's credential, so two workers never spend the
        same (single-use) refresh token: the second finds the first one's fresh token and uses it.
        """
        cid = company.company_id
        cached = self._tokens.get(cid)
        if cached is not None and cached.fresh() and cached.access_token.get_secret_value() != failed:
            return cached.access_token
        async with self._locks.setdefault(cid, asyncio.Lock()):
            cached = self._tokens.get(cid)
            if cached is not None and cached.fresh() and cached.access_token.get_secret_value() != failed:
                return cached.access_token
            if self._sealer is None:
                raise CalendarUnavailable("VOICEBOOK_SECRET_KEY is unset: cannot store a refreshed token")
            try:
                grant = await self._refresh_locked(company, failed)
            except CredentialRefused as exc:
                await self.disconnect(company, exc.reason)
                raise
            self._tokens[cid] = grant
            return grant.access_token

    async def _refresh_locked(self, company: CompanySecrets, failed: str | None) -> TokenGrant:
        assert self._sealer is not None
        async with self._sessionmaker() as session, session.begin():
            # The UPDATE takes the row lock on every engine before the credential is read.
            await session.execute(
                update(CompanyCredential)
                .where(CompanyCredential.company_id == company.company_id)
                .values(updated_at=utc_now())
            )
            current = await secrets_of(session, company.company_id, self._sealer)
            if current is None or current.refresh_token is None or current.client_secret is None:
                raise CredentialRefused("no OAuth refresh token stored")
            if current.access_token is not None and current.access_expires_at is not None:
                stored = TokenGrant(current.access_token, current.refresh_token, current.access_expires_at)
                if stored.fresh() and current.access_token.get_secret_value() != failed:
                    return stored  # another worker refreshed it meanwhile
            grant = await exchange_refresh_token(
                self._token_http(self._base_url(company)),
                client_id=current.oauth_client_id or "",
                client_secret=current.client_secret,
                refresh_token=current.refresh_token,
            )
            await save_tokens(
                session,
                company.company_id,
                self._sealer,
                slug=company.slug,
                refresh_token=grant.refresh_token.get_secret_value(),
                access_token=grant.access_token.get_secret_value(),
                access_expires_at=grant.expires_at,
            )
            log.info("calcom.oauth_refreshed", company=company.slug)
            return grant

    async def disconnect(self, company: CompanySecrets, reason: str) -> None:
        """Mark ``company`` disconnected (once), drop its client and token, raise the gauge."""
        async with self._sessionmaker() as session, session.begin():
            changed = await mark_state(session, company.company_id, DISCONNECTED, reason)
        self._gauge(company.slug, True)
        self._secrets.forget(company.company_id)
        self._tokens.pop(company.company_id, None)
        kept = self._clients.pop(self._key(company), None)
        if kept is not None:
            await kept.http.aclose()
        if changed:
            log.error(
                "company.disconnected",
                company=company.slug,
                reason=reason,
                detail="its Cal.com credential was refused; load a new one with `voicebook tenants load`",
            )


__all__ = ["CalendarRegistry", "CompanyGateway", "DisconnectedGateway"]
