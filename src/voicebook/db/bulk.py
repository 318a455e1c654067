"""Loading a large tenants file (10 000 companies) in one transaction, in linear time, with progress.

``load_tenants`` works company by company through the ORM; the session's identity map then grows with
every row, and each autoflush walks all of it — quadratic for a large file. Loading in chunks and
expunging the session between them keeps every step the same size; the transaction (and so the "whole
file or nothing" promise) is unchanged, and so is the meaning of the file: each company's numbers and
services follow its own entry exactly, as ``load_tenants`` defines.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.tenants import LoadSummary, TenantsFile, load_tenants

CHUNK = 500


async def load_in_chunks(
    session: AsyncSession,
    spec: TenantsFile,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> LoadSummary:
    """``load_tenants`` over ``chunk`` companies at a time; ``progress(n)`` after each chunk of ``n``."""
    companies = numbers = services = changed = 0
    for start in range(0, len(spec.companies), chunk):
        part = TenantsFile.model_construct(companies=spec.companies[start : start + chunk])
        summary = await load_tenants(session, part)
        await session.flush()
        session.expunge_all()
        companies += summary.companies
        numbers += summary.phone_numbers
        services += summary.services
        changed += summary.changed
        if progress is not None:
            progress(len(part.companies))
    return LoadSummary(companies, numbers, services, changed)
