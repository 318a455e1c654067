"""Resolving the called company and its services; the short-lived offering cache."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import make_tenant

from voicebook.booking.tenancy import CallContext, OfferingCache
from voicebook.booking.window import BookingWindow
from voicebook.db.models import Service

Sm = async_sessionmaker[AsyncSession]


@pytest.mark.asyncio
class TestOfferingCache:
    async def test_finds_services_by_name_alias_and_inside_a_sentence(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        cache = OfferingCache()
        async with sessionmaker() as session:
            offering = await cache.get(session, CallContext("c", "+491701234567", "+49301234567"))
        assert offering is not None
        assert offering.tenant.slug == "salon-mitte"
        assert offering.find("haarschnitt") is not None
        assert offering.find("Herrenschnitt") is not None
        assert offering.find("einen Haarschnitt bitte") is not None
        assert offering.find("Zahnreinigung") is None
        assert offering.names == ["Haarschnitt"]

    async def test_keeps_an_answer_for_its_ttl_then_reloads(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        now = [0.0]
        cache = OfferingCache(ttl_seconds=10, clock=lambda: now[0])
        ctx = CallContext("c", None, "+49301234567")
        async with sessionmaker() as session:
            first = await cache.get(session, ctx)
        async with sessionmaker() as session, session.begin():
            await session.execute(update(Service).values(name="Schnitt"))
        async with sessionmaker() as session:
            assert cache.fresh(ctx) is first  # kept: read without a session
            assert await cache.get(session, ctx) is first
            now[0] = 10
            assert cache.fresh(ctx) is None  # the ttl is over at its last instant, as for ``get``
            now[0] = 11
            assert cache.fresh(ctx) is None  # expired: only ``get`` (with a session) reloads it
            fresh = await cache.get(session, ctx)
        assert fresh is not None
        assert fresh.names == ["Schnitt"]
        assert cache.fresh(CallContext("c", None, None)) is None  # not cacheable without a number

    async def test_unknown_number_is_none(self, sessionmaker: Sm) -> None:
        await make_tenant(sessionmaker)
        async with sessionmaker() as session:
            assert await OfferingCache().get(session, CallContext("c", None, "+4940999999")) is None


@pytest.mark.asyncio
async def test_offering_carries_each_services_booking_window(sessionmaker: Sm) -> None:
    """Issue 13, case 8: the flow reads the window from the ServiceRef it already has."""
    await make_tenant(sessionmaker)
    async with sessionmaker() as session:
        default = await OfferingCache().get(session, CallContext("c", None, "+49301234567"))
    assert default is not None
    ref = default.find("Haarschnitt")
    assert ref is not None
    assert ref.window == BookingWindow(max_days_ahead=365, min_notice_minutes=0)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Service).values(max_days_ahead=14, min_notice_minutes=120))
    async with sessionmaker() as session:
        offering = await OfferingCache().get(session, CallContext("c", None, "+49301234567"))
    assert offering is not None
    ref = offering.find("Haarschnitt")
    assert ref is not None
    assert (ref.max_days_ahead, ref.min_notice_minutes) == (14, 120)
    assert ref.window == BookingWindow(max_days_ahead=14, min_notice_minutes=120)
