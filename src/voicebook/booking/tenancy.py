"""Resolve who is calling whom: company from the called number, service by name or alias, the customer."""

from __future__ import annotations

import functools
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.booking.window import DEFAULT_MAX_DAYS_AHEAD, DEFAULT_MIN_NOTICE_MINUTES, BookingWindow
from voicebook.db import queries
from voicebook.db.models import Call, Company, Customer
from voicebook.memo import Memo


@dataclass(frozen=True)
class CallContext:
    """Who is calling whom, as Retell's *signed* call says (never the model's arguments).

    ``from_number`` is the raw caller ID: it may be withheld, ``anonymous`` or a SIP URI. Only a valid
    E.164 number (``caller_e164``) identifies a customer; without one the call owns only what it booked.
    """

    call_id: str
    from_number: str | None = None
    to_number: str | None = None

    @property
    def caller_e164(self) -> str | None:
        return e164_or_none(self.from_number)


@functools.lru_cache(maxsize=4096)
def e164_or_none(number: str | None) -> str | None:
    """A caller ID as E.164 when it is a valid international number, else None (withheld, SIP, junk).

    Remembered (a pure function of the string): a call's caller ID is read on each of its function
    calls, and parsing and validating it with ``phonenumbers`` is not cheap.
    """
    if not number or not number.startswith("+") or len(number) > 32:
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


@dataclass(frozen=True)
class Tenant:
    company_id: int
    slug: str
    name: str
    timezone: str
    email_domain: str
    locale: str
    country: str


@dataclass(frozen=True)
class ServiceRef:
    id: int
    name: str
    event_type_id: int
    duration_minutes: int
    max_days_ahead: int = DEFAULT_MAX_DAYS_AHEAD
    min_notice_minutes: int = DEFAULT_MIN_NOTICE_MINUTES

    @property
    def window(self) -> BookingWindow:
        """The service's booking window, for ``booking.window.check_window``."""
        return BookingWindow(self.max_days_ahead, self.min_notice_minutes)


def _tenant(company: Company) -> Tenant:
    return Tenant(
        company.id,
        company.slug,
        company.name,
        company.timezone,
        company.email_domain,
        company.locale,
        company.country,
    )


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss")


async def resolve_tenant(session: AsyncSession, ctx: CallContext) -> Tenant | None:
    """The called number decides; without one, the call row (from call_started) or a single company."""
    if ctx.to_number:
        company = await queries.company_by_number(session, ctx.to_number)
        return _tenant(company) if company else None
    call = (
        await session.execute(select(Call).where(Call.retell_call_id == ctx.call_id))
    ).scalar_one_or_none()
    if call is not None and call.company_id is not None:
        return _tenant(await session.get_one(Company, call.company_id))
    companies = (await session.execute(select(Company).limit(2))).scalars().all()
    return _tenant(companies[0]) if len(companies) == 1 else None


@dataclass(frozen=True)
class Offering:
    """A company and what it offers, as one call needs them."""

    tenant: Tenant
    services: tuple[tuple[ServiceRef, frozenset[str]], ...]  # each with its folded name and aliases

    @property
    def names(self) -> list[str]:
        return [ref.name for ref, _ in self.services]

    def find(self, name: str) -> ServiceRef | None:
        wanted = _fold(name)
        for ref, spellings in self.services:
            if wanted in spellings:
                return ref
        for ref, _ in self.services:  # "ein Haarschnitt bitte" → Haarschnitt
            if _fold(ref.name) in wanted:
                return ref
        return None


async def load_offering(session: AsyncSession, ctx: CallContext) -> Offering | None:
    tenant = await resolve_tenant(session, ctx)
    if tenant is None:
        return None
    services = tuple(
        (
            ServiceRef(
                s.id, s.name, s.event_type_id, s.duration_minutes, s.max_days_ahead, s.min_notice_minutes
            ),
            frozenset({_fold(s.name), *(_fold(a) for a in s.aliases or [])}),
        )
        for s in await queries.services_of(session, tenant.company_id)
    )
    return Offering(tenant, services)


class OfferingCache:
    """A few seconds' memory of who owns a called number and what it offers.

    It saves the three configuration queries of every function call. Only configuration is kept —
    no guarantee rests on it — and a changed tenants file is seen within ``ttl_seconds``.
    """

    def __init__(self, ttl_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._memo: Memo[str, Offering] = Memo(ttl_seconds, clock)

    def fresh(self, ctx: CallContext) -> Offering | None:
        """The kept offering of the called number while it is fresh, else None (no session needed)."""
        hit = self._memo.fresh(ctx.to_number) if ctx.to_number else None
        return hit[0] if hit is not None else None

    async def get(self, session: AsyncSession, ctx: CallContext) -> Offering | None:
        if not ctx.to_number:  # resolved through the call row: not cacheable by number
            return await load_offering(session, ctx)
        asked_at = self._memo.now()
        hit = self._memo.fresh(ctx.to_number)
        if hit is not None:
            return hit[0]
        offering = await load_offering(session, ctx)
        if offering is not None:
            self._memo.keep(ctx.to_number, offering, asked_at)
        return offering


async def ensure_call(session: queries.Executor, ctx: CallContext, company_id: int, now: datetime) -> None:
    """Record the call before any side effect; a repeated insert is a no-op."""
    await queries.insert_or_nothing(
        session,
        Call.__table__,  # type: ignore[arg-type]
        {
            "retell_call_id": ctx.call_id,
            "company_id": company_id,
            "from_number": ctx.from_number,
            "to_number": ctx.to_number,
            "status": "ongoing",
            "created_at": now,
            "updated_at": now,
        },
    )


async def ensure_customer(
    session: queries.Executor,
    company_id: int,
    caller_e164: str | None,
    name: str | None,
    email: str | None,
    now: datetime,
) -> int | None:
    """The customer row of the call's signed caller ID (created on first call); None when it has none.

    Only the signed caller ID ever creates or finds a customer (a ``phone`` argument never does), and an
    existing row's name and e-mail are only filled in, never overwritten: a booking can never change what
    another person's record says.
    """
    if not caller_e164:
        return None
    values = {
        "company_id": company_id,
        "phone": caller_e164,
        "name": name,
        "email": email,
        "created_at": now,
        "updated_at": now,
    }
    got = await queries.insert_or_get(
        session,
        Customer.__table__,  # type: ignore[arg-type]
        values,
        ("company_id", "phone"),
    )
    if got.row is None:  # pragma: no cover - insert-or-get always finds the row it conflicted with
        return None
    fill = {k: v for k, v in (("name", name), ("email", email)) if v and getattr(got.row, k) is None}
    if fill and not got.inserted:
        await session.execute(
            update(Customer).where(Customer.id == got.row.id).values(**fill, updated_at=now)
        )
    return int(got.row.id)


async def customer_of_call(session: AsyncSession, company_id: int, call_id: str) -> int | None:
    """The customer a call's signed caller ID identifies (for work done after the call, e.g. reconcile)."""
    from_number = (
        await session.execute(select(Call.from_number).where(Call.retell_call_id == call_id))
    ).scalar_one_or_none()
    phone = e164_or_none(from_number)
    if phone is None:
        return None
    return (
        await session.execute(
            select(Customer.id).where(Customer.company_id == company_id, Customer.phone == phone)
        )
    ).scalar_one_or_none()
