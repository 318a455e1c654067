"""Who is calling whom, pinned: the caller ID that identifies a customer, the customer row it creates or
finds (never overwriting another person's name or e-mail), the call row, and how a call finds its company.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant

from voicebook.booking.tenancy import (
    CallContext,
    OfferingCache,
    ServiceRef,
    Tenant,
    _fold,
    customer_of_call,
    e164_or_none,
    ensure_call,
    ensure_customer,
    load_offering,
    resolve_tenant,
)
from voicebook.db.models import Call, Company, Customer

Sm = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CALLER = "+491701234567"

E164 = [
    (None, None),
    ("", None),
    ("anonymous", None),
    ("sip:alice@example.com", None),
    ("tel:+491701234567", None),  # a URI, not a caller ID in E.164
    ("491701234567", None),  # no leading +
    ("+4917012345", None),  # too short to be valid
    ("+491701234567", CALLER),
    ("+49 (170) 123-4567", CALLER),  # formatted: normalised
    (CALLER + " " * 19, CALLER),  # 32 characters: still parsed
    (CALLER + " " * 20, None),  # 33: refused before parsing
]


@pytest.mark.parametrize(("raw", "e164"), E164)
def test_e164_or_none(raw: str | None, e164: str | None) -> None:
    assert e164_or_none(raw) == e164
    assert CallContext("c", raw).caller_e164 == e164


def test_fold_ignores_case_accents_and_spacing() -> None:
    assert _fold("  Fußpflege ") == "fusspflege"
    assert _fold("Bräune") == "braune"


async def _customers(sm: Sm) -> list[tuple[int, str, str | None, str | None, datetime]]:
    async with sm() as session:
        rows = await session.execute(
            select(
                Customer.company_id, Customer.phone, Customer.name, Customer.email, Customer.updated_at
            ).order_by(Customer.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def _ensure(
    sm: Sm, company_id: int, caller: str | None, name: str | None, email: str | None, now: datetime
) -> int | None:
    async with sm() as session, session.begin():
        return await ensure_customer(session, company_id, caller, name, email, now)


@pytest.mark.asyncio
async def test_no_signed_caller_id_creates_no_customer(sessionmaker: Sm) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    assert await _ensure(sessionmaker, tenant.company_id, None, "Jane", "jane@example.com", NOW) is None
    assert await _ensure(sessionmaker, tenant.company_id, "", "Jane", "jane@example.com", NOW) is None
    assert await _customers(sessionmaker) == []


@pytest.mark.asyncio
async def test_first_call_creates_the_customer_and_later_calls_find_it(sessionmaker: Sm) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    first = await _ensure(sessionmaker, tenant.company_id, CALLER, "Jane", "jane@example.com", NOW)
    assert first is not None
    assert await _customers(sessionmaker) == [(tenant.company_id, CALLER, "Jane", "jane@example.com", NOW)]
    later = NOW + timedelta(hours=1)
    again = await _ensure(sessionmaker, tenant.company_id, CALLER, "Someone Else", "else@example.com", later)
    assert again == first
    # an existing name and e-mail are never overwritten, and nothing to fill changes nothing
    assert await _customers(sessionmaker) == [(tenant.company_id, CALLER, "Jane", "jane@example.com", NOW)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("stored", "given", "after"),
    [
        ((None, None), ("Jane", "jane@example.com"), ("Jane", "jane@example.com")),
        ((None, "old@example.com"), ("Jane", "jane@example.com"), ("Jane", "old@example.com")),
        (("Old", None), ("Jane", "jane@example.com"), ("Old", "jane@example.com")),
        ((None, None), (None, "jane@example.com"), (None, "jane@example.com")),
        ((None, None), ("", ""), (None, None)),
    ],
)
async def test_an_existing_customer_is_only_filled_in(
    sessionmaker: Sm,
    stored: tuple[str | None, str | None],
    given: tuple[str | None, str | None],
    after: tuple[str | None, str | None],
) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    other, _ = await make_tenant(sessionmaker, slug="other", number="+49307654321")
    await _ensure(sessionmaker, other.company_id, CALLER, None, None, NOW)  # same number, other company
    customer_id = await _ensure(sessionmaker, tenant.company_id, CALLER, *stored, NOW)
    later = NOW + timedelta(hours=1)
    assert await _ensure(sessionmaker, tenant.company_id, CALLER, *given, later) == customer_id
    changed = after != stored
    assert await _customers(sessionmaker) == [
        (other.company_id, CALLER, None, None, NOW),
        (tenant.company_id, CALLER, *after, later if changed else NOW),
    ]


@pytest.mark.asyncio
async def test_ensure_call_records_the_call_once(sessionmaker: Sm) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    ctx = CallContext("call_1", "anonymous", "+49301234567")
    for _ in range(2):
        async with sessionmaker() as session, session.begin():
            await ensure_call(session, ctx, tenant.company_id, NOW)
    async with sessionmaker() as session:
        rows = (await session.execute(select(Call))).scalars().all()
    assert [(c.retell_call_id, c.company_id, c.from_number, c.to_number, c.status) for c in rows] == [
        ("call_1", tenant.company_id, "anonymous", "+49301234567", "ongoing")
    ]
    assert (rows[0].created_at, rows[0].updated_at) == (NOW, NOW)


@pytest.mark.asyncio
async def test_customer_of_call_is_found_by_the_calls_signed_number_only(sessionmaker: Sm) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    other, _ = await make_tenant(sessionmaker, slug="other", number="+49307654321")
    await _ensure(sessionmaker, other.company_id, CALLER, "Other", None, NOW)
    mine = await _ensure(sessionmaker, tenant.company_id, CALLER, "Jane", None, NOW)
    await _ensure(sessionmaker, tenant.company_id, "+491709999999", "Joe", None, NOW)
    async with sessionmaker() as session, session.begin():
        await ensure_call(session, CallContext("call_joe", "+491709999999"), tenant.company_id, NOW)
        await ensure_call(session, CallContext("call_jane", "+49 170 1234567"), tenant.company_id, NOW)
        await ensure_call(session, CallContext("call_anon", "anonymous"), tenant.company_id, NOW)
        await ensure_call(session, CallContext("call_new", "+491705555555"), tenant.company_id, NOW)
    async with sessionmaker() as session:
        assert await customer_of_call(session, tenant.company_id, "call_jane") == mine
        assert await customer_of_call(session, tenant.company_id, "call_anon") is None
        assert await customer_of_call(session, tenant.company_id, "call_new") is None
        assert await customer_of_call(session, tenant.company_id, "call_unknown") is None


@pytest.mark.asyncio
async def test_resolve_tenant_by_number_by_call_row_or_the_only_company(sessionmaker: Sm) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    async with sessionmaker() as session:
        # one company: a call without a called number belongs to it
        assert await resolve_tenant(session, CallContext("call_x")) == tenant
        assert await resolve_tenant(session, CallContext("call_x", None, "+4940999999")) is None
    other, _ = await make_tenant(sessionmaker, slug="other", number="+49307654321")
    third, _ = await make_tenant(sessionmaker, slug="third", number="+49307777777")
    async with sessionmaker() as session, session.begin():
        await ensure_call(session, CallContext("call_other"), other.company_id, NOW)
        await ensure_call(session, CallContext("call_none"), tenant.company_id, NOW)
        await session.execute(update(Call).where(Call.retell_call_id == "call_none").values(company_id=None))
    async with sessionmaker() as session:
        assert await resolve_tenant(session, CallContext("call_x", None, "+49307654321")) == other
        assert await resolve_tenant(session, CallContext("call_other")) == other
        # several companies and no call row (or one without a company): nobody can tell
        assert await resolve_tenant(session, CallContext("call_none")) is None
        assert await resolve_tenant(session, CallContext("call_x")) is None
    assert third.slug == "third"


@pytest.mark.asyncio
async def test_the_tenant_carries_every_company_field(sessionmaker: Sm) -> None:
    await make_tenant(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Company).values(name="Salon Süd", timezone="Europe/Vienna", locale="en", country="AT")
        )
    async with sessionmaker() as session:
        tenant = await resolve_tenant(session, CallContext("c", None, "+49301234567"))
        company_id = (await session.execute(select(func.min(Company.id)))).scalar_one()
    assert tenant == Tenant(
        company_id, "salon-mitte", "Salon Süd", "Europe/Vienna", "salon-mitte.example", "en", "AT"
    )


@pytest.mark.asyncio
async def test_the_offering_carries_every_service_field(sessionmaker: Sm) -> None:
    _, service = await make_tenant(sessionmaker, event_type_id=4242)
    async with sessionmaker() as session:
        offering = await load_offering(session, CallContext("c", None, "+49301234567"))
    assert offering is not None
    assert offering.find("Haarschnitt") == ServiceRef(service.id, "Haarschnitt", 4242, 30, 365, 0)


@pytest.mark.asyncio
async def test_the_cache_keeps_an_answer_for_exactly_its_default_ttl(sessionmaker: Sm) -> None:
    await make_tenant(sessionmaker)
    now = [0.0]
    cache = OfferingCache(clock=lambda: now[0])
    ctx = CallContext("c", None, "+49301234567")
    async with sessionmaker() as session:
        first = await cache.get(session, ctx)
        now[0] = 9.999
        assert await cache.get(session, ctx) is first
        now[0] = 10.0
        assert await cache.get(session, ctx) is not first


@pytest.mark.asyncio
async def test_without_a_called_number_the_cache_resolves_through_the_call_every_time(
    sessionmaker: Sm,
) -> None:
    tenant, _ = await make_tenant(sessionmaker)
    cache = OfferingCache(clock=lambda: 0.0)
    async with sessionmaker() as session:
        first = await cache.get(session, CallContext("c"))
        second = await cache.get(session, CallContext("c"))
    assert first is not None
    assert second is not None
    assert first.tenant == tenant
    assert first is not second  # not cached: there is no number to key it by
