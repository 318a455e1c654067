"""Typed factories for test data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking.tenancy import ServiceRef, Tenant
from voicebook.db.models import Company, PhoneNumber, Service


async def make_tenant(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    slug: str = "salon-mitte",
    number: str = "+49301234567",
    event_type_id: int = 2563193,
    round_robin: bool = False,
) -> tuple[Tenant, ServiceRef]:
    async with sessionmaker() as session, session.begin():
        company = Company(
            slug=slug,
            name="Salon Mitte",
            timezone="Europe/Berlin",
            email_domain=f"{slug}.example",
            locale="de",
            country="DE",
        )
        session.add(company)
        await session.flush()
        session.add(PhoneNumber(company_id=company.id, number=number))
        service = Service(
            company_id=company.id,
            name="Haarschnitt",
            aliases=["Herrenschnitt"],
            event_type_id=event_type_id,
            duration_minutes=30,
            round_robin=round_robin,
        )
        session.add(service)
        await session.flush()
        tenant = Tenant(company.id, slug, company.name, company.timezone, company.email_domain, "de", "DE")
        return tenant, ServiceRef(service.id, service.name, service.event_type_id, service.duration_minutes)


def company_row(slug: str, at: datetime, **extra: Any) -> dict[str, Any]:
    """The values of one ``companies`` row for Core inserts (name from the slug unless given)."""
    return {
        "slug": slug,
        "name": f"Salon {slug}",
        "timezone": "Europe/Berlin",
        "email_domain": f"{slug}.example",
        "locale": "de",
        "country": "DE",
        "created_at": at,
        "updated_at": at,
        **extra,
    }


def attempt_values(
    tenant: Tenant, service: ServiceRef, key: str, start: datetime, **extra: Any
) -> dict[str, Any]:
    """What ``attempts.claim`` inserts for a call's booking of ``service`` at ``start``."""
    return {
        "idempotency_key": key,
        "call_id": "call_1",
        "company_id": tenant.company_id,
        "service_id": service.id,
        "event_type_id": service.event_type_id,
        "start_at": start,
        "fingerprint": "f",
        "attendee_name": "Jane",
        "attendee_email": "jane@example.com",
        **extra,
    }
