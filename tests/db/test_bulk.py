"""Chunked loading (issue 16, scale): the same result as one pass, idempotent, and it reports progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.db.bulk import load_in_chunks
from voicebook.db.models import Company, PhoneNumber, Service
from voicebook.db.tenants import parse_tenants


def _file(tmp_path: Path, n: int, moved: bool = False) -> Path:
    lines = ["companies:"]
    for i in range(n):
        # With ``moved``, company 0 takes company 4's number (``--move-numbers``): moving between chunks.
        numbers = [f"+4930{7000000 + i:07d}"] + (["+49307000004"] if moved and i == 0 else [])
        if moved and i == 4:
            numbers = ["+49307000099"]
        quoted = ", ".join(f'"{x}"' for x in numbers)
        lines.append(
            f"""  - slug: c{i}
    name: Company {i}
    timezone: UTC
    email_domain: c{i}.example
    phone_numbers: [{quoted}]
    services:
      - {{name: S, event_type_id: {100 + i}, duration_minutes: 30}}"""
        )
    path = tmp_path / f"t{n}{moved}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _count(sm: async_sessionmaker[AsyncSession], model: type[object]) -> int:
    async with sm() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


@pytest.mark.asyncio
async def test_chunks_load_everything_once_and_report_progress(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    seen: list[int] = []
    spec = parse_tenants(_file(tmp_path, 5))
    async with sessionmaker() as s, s.begin():
        summary = await load_in_chunks(s, spec, seen.append, chunk=2)
    assert seen == [2, 2, 1]
    assert (summary.companies, summary.phone_numbers, summary.services) == (5, 5, 5)
    assert summary.changed == 15
    async with sessionmaker() as s, s.begin():
        again = await load_in_chunks(s, spec, chunk=2)
    assert again.changed == 0
    moved = parse_tenants(_file(tmp_path, 5, moved=True))
    async with sessionmaker() as s, s.begin():
        await load_in_chunks(s, moved, chunk=2, move_numbers=True)
    async with sessionmaker() as s:
        owner = (
            await s.execute(
                select(Company.slug)
                .join(PhoneNumber, PhoneNumber.company_id == Company.id)
                .where(PhoneNumber.number == "+49307000004")
            )
        ).scalar_one()
    assert owner == "c0"
    assert await _count(sessionmaker, Company) == 5
    assert await _count(sessionmaker, PhoneNumber) == 6
    assert await _count(sessionmaker, Service) == 5


async def _snapshot(sm: async_sessionmaker[AsyncSession]) -> list[tuple[object, ...]]:
    async with sm() as s:
        companies = [
            (c.slug, c.name, c.timezone, c.email_domain, c.locale, c.country)
            for c in (await s.execute(select(Company).order_by(Company.slug))).scalars()
        ]
        numbers = [
            tuple(r)
            for r in await s.execute(
                select(Company.slug, PhoneNumber.number)
                .join(PhoneNumber, PhoneNumber.company_id == Company.id)
                .order_by(PhoneNumber.number)
            )
        ]
        services = [
            (
                slug,
                sv.name,
                sv.aliases,
                sv.event_type_id,
                sv.duration_minutes,
                sv.round_robin,
                sv.max_days_ahead,
            )
            for slug, sv in await s.execute(
                select(Company.slug, Service)
                .join(Service, Service.company_id == Company.id)
                .order_by(Service.name)
            )
        ]
    return [*companies, *numbers, *sorted(services, key=repr)]


@pytest.mark.asyncio
async def test_same_rows_and_change_counts_as_load_tenants(
    sessionmaker: async_sessionmaker[AsyncSession], engine: object, tmp_path: Path
) -> None:
    from tests.conftest import wipe

    from voicebook.db.tenants import load_tenants

    first, second = parse_tenants(_file(tmp_path, 6)), parse_tenants(_file(tmp_path, 6, moved=True))
    results = []
    for loader in ("plain", "chunks"):
        await wipe(engine)  # type: ignore[arg-type]
        counts = []
        for spec in (first, first, second):
            async with sessionmaker() as s, s.begin():
                if loader == "plain":
                    counts.append((await load_tenants(s, spec, move_numbers=True)).changed)
                else:
                    counts.append((await load_in_chunks(s, spec, chunk=4, move_numbers=True)).changed)
        results.append((counts, await _snapshot(sessionmaker)))
    assert results[0] == results[1]
