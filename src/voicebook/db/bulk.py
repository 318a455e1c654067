"""Loading a large tenants file (10 000 companies) in one transaction, in linear time, with progress.

``load_tenants`` works company by company through the ORM: five statements and two flushes each, and
the session's identity map grows with every row. For a large file that is minutes. Here the file goes
in chunks; per chunk, three queries read what the database already holds, and then:

* a company that is *new* and whose numbers are all new is inserted in bulk (three multi-row INSERTs
  per chunk) — nothing exists that ``load_tenants`` would update, delete or refuse;
* a company whose rows already say exactly what the file says is skipped — ``load_tenants`` would
  change nothing (the same file twice changes nothing);
* every other company (changed, or touching a number another company holds) goes through
  ``load_tenants`` itself, so its rules stay the one definition of what loading means.

The session is expunged after each chunk, so each step stays the same size. The transaction — and so
"the whole file or nothing" — is the caller's, as before. ``tests/db/test_bulk.py`` checks that the
result equals ``load_tenants`` row for row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import phonenumbers
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.base import utc_now
from voicebook.db.models import Company, PhoneNumber, Service
from voicebook.db.tenants import CompanySpec, LoadSummary, TenantsFile, load_tenants

CHUNK = 500


def _company_fields(cspec: CompanySpec) -> dict[str, Any]:
    """The columns ``load_tenants`` writes for a company (the country as it derives it)."""
    country = cspec.country or phonenumbers.region_code_for_number(
        phonenumbers.parse(cspec.phone_numbers[0], None)
    )
    return {
        "name": cspec.name,
        "timezone": cspec.timezone,
        "email_domain": cspec.email_domain,
        "locale": cspec.locale,
        "country": country,
    }


async def load_in_chunks(
    session: AsyncSession,
    spec: TenantsFile,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    **load_options: Any,
) -> LoadSummary:
    """Load ``spec`` like ``load_tenants``, ``chunk`` companies at a time; ``progress(n)`` per chunk.

    ``load_options`` go to ``load_tenants`` unchanged (e.g. how it treats a number another company holds:
    such a company never takes the bulk path, so ``load_tenants`` alone decides).
    """
    companies = numbers = services = changed = 0
    for start in range(0, len(spec.companies), chunk):
        part = spec.companies[start : start + chunk]
        new, _unchanged_ones, other = await _sort(session, part)
        changed += await _insert_new(session, new)
        if other:
            summary = await load_tenants(
                session, TenantsFile.model_construct(companies=other), **load_options
            )
            changed += summary.changed
        await session.flush()
        session.expunge_all()
        companies += len(part)
        numbers += sum(len(c.phone_numbers) for c in part)
        services += sum(len(c.services) for c in part)
        if progress is not None:
            progress(len(part))
    return LoadSummary(companies, numbers, services, changed)


async def _sort(
    session: AsyncSession, part: list[CompanySpec]
) -> tuple[list[CompanySpec], list[CompanySpec], list[CompanySpec]]:
    """(new with new numbers, unchanged, everything else) — three queries for the whole chunk."""
    slugs = [c.slug for c in part]
    wanted_numbers = [n for c in part for n in c.phone_numbers]
    rows = (await session.execute(select(Company).where(Company.slug.in_(slugs)))).scalars().all()
    existing = {c.slug: c for c in rows}
    ids = [c.id for c in rows]
    held: dict[str, int] = {}
    for number, company_id in await session.execute(
        select(PhoneNumber.number, PhoneNumber.company_id).where(
            PhoneNumber.number.in_(wanted_numbers) | PhoneNumber.company_id.in_(ids)
        )
    ):
        held[number] = company_id
    stored: dict[int, dict[str, Service]] = {}
    if ids:
        for service in (await session.execute(select(Service).where(Service.company_id.in_(ids)))).scalars():
            stored.setdefault(service.company_id, {})[service.name] = service
    new: list[CompanySpec] = []
    same: list[CompanySpec] = []
    other: list[CompanySpec] = []
    for cspec in part:
        row = existing.get(cspec.slug)
        if row is None:
            (other if any(n in held for n in cspec.phone_numbers) else new).append(cspec)
        elif _unchanged(cspec, row, held, stored.get(row.id, {})):
            same.append(cspec)
        else:
            other.append(cspec)
    return new, same, other


def _unchanged(cspec: CompanySpec, row: Company, held: dict[str, int], stored: dict[str, Service]) -> bool:
    if any(getattr(row, k) != v for k, v in _company_fields(cspec).items()):
        return False
    own = {n for n, company_id in held.items() if company_id == row.id}
    if own != set(cspec.phone_numbers):
        return False
    for sspec in cspec.services:
        service = stored.get(sspec.name)
        if service is None or any(getattr(service, k) != v for k, v in sspec.model_dump().items()):
            return False
    return True


async def _insert_new(session: AsyncSession, new: list[CompanySpec]) -> int:
    """Multi-row INSERTs for brand-new companies; the count of changes as ``load_tenants`` counts them."""
    if not new:
        return 0
    now = utc_now()
    company_table: Any = Company.__table__
    await session.execute(
        insert(company_table),
        [{"slug": c.slug, **_company_fields(c), "created_at": now, "updated_at": now} for c in new],
    )
    found = await session.execute(
        select(Company.slug, Company.id).where(Company.slug.in_([c.slug for c in new]))
    )
    ids = {row[0]: row[1] for row in found}
    number_rows = [{"company_id": ids[c.slug], "number": n} for c in new for n in c.phone_numbers]
    service_rows = [
        {"company_id": ids[c.slug], **s.model_dump(), "created_at": now, "updated_at": now}
        for c in new
        for s in c.services
    ]
    number_table: Any = PhoneNumber.__table__
    service_table: Any = Service.__table__
    await session.execute(insert(number_table), number_rows)
    if service_rows:
        await session.execute(insert(service_table), service_rows)
    return len(new) + len(number_rows) + len(service_rows)
