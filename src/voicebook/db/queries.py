"""Repository functions over the async session. They flush when needed and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.models import Company, PhoneNumber, Service


async def insert_or_nothing(session: AsyncSession, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that silently does nothing on a unique-key conflict; True when the row was inserted.

    The insert itself is the lock (never check-then-insert): PostgreSQL and SQLite use
    ``ON CONFLICT DO NOTHING``, MariaDB ``INSERT IGNORE``. Conflicts on any unique key count.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table).values(**values).prefix_with("IGNORE")
    else:  # pragma: no cover - we support exactly three engines
        raise NotImplementedError(dialect)
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def company_by_number(session: AsyncSession, number: str) -> Company | None:
    return (
        await session.execute(
            select(Company)
            .join(PhoneNumber, PhoneNumber.company_id == Company.id)
            .where(PhoneNumber.number == number)
        )
    ).scalar_one_or_none()


async def services_of(session: AsyncSession, company_id: int) -> Sequence[Service]:
    return (
        (await session.execute(select(Service).where(Service.company_id == company_id).order_by(Service.id)))
        .scalars()
        .all()
    )


async def all_services(session: AsyncSession) -> Sequence[tuple[Service, Company]]:
    rows = await session.execute(
        select(Service, Company).join(Company, Company.id == Service.company_id).order_by(Service.id)
    )
    return [(s, c) for s, c in rows.all()]
