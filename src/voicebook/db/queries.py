"""Repository functions over the async session. They flush when needed and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Row, Select, Table, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.models import Company, PhoneNumber, Service

S = TypeVar("S", bound=Select[Any])


async def insert_or_nothing(session: AsyncSession, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that silently does nothing on a unique-key conflict; True when the row was inserted.

    The insert itself is the lock (never check-then-insert): PostgreSQL and SQLite use
    ``ON CONFLICT DO NOTHING``, MariaDB ``INSERT IGNORE``. Conflicts on any unique key count.
    To read the row after a conflict, use :func:`insert_or_get`: a plain SELECT may miss it on MariaDB.
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


class InsertOrGet(NamedTuple):
    """What :func:`insert_or_get` found: unpacks as ``inserted, row``."""

    inserted: bool
    """True when this transaction inserted the row (and so owns it)."""
    row: Row[Any] | None
    """The row holding the key — ours or the concurrent winner's. ``None`` only when the conflict was on
    another unique key than ``key_columns``, or the winner's row is gone again (deleted since)."""


def is_mysql(session: AsyncSession) -> bool:
    """MariaDB and MySQL share InnoDB's REPEATABLE READ snapshots, hence :func:`latest_committed`."""
    return session.get_bind().dialect.name in ("mysql", "mariadb")


def latest_committed(session: AsyncSession, stmt: S) -> S:
    """Make ``stmt`` see rows other transactions committed after this transaction's snapshot.

    MariaDB/MySQL run REPEATABLE READ: the first plain SELECT of a transaction fixes its snapshot, and
    every later plain SELECT reads that snapshot — even after our own ``INSERT IGNORE`` waited for and
    conflicted with a row committed since. A locking read (``LOCK IN SHARE MODE``) reads the latest
    committed version instead. A *shared* lock, because the conflicting ``INSERT IGNORE`` already holds
    one on that index record: asking for an exclusive lock here would let two such transactions
    deadlock. PostgreSQL (READ COMMITTED: each statement sees what was committed before it) and SQLite
    (one writer at a time) need nothing, so the statement is returned unchanged there.
    """
    if is_mysql(session):
        return stmt.with_for_update(read=True)
    return stmt


async def insert_or_get(
    session: AsyncSession, table: Table, values: dict[str, Any], key_columns: Sequence[str]
) -> InsertOrGet:
    """Insert-or-nothing, then read back the row holding ``key_columns`` — ours or a concurrent winner's.

    Use this instead of :func:`insert_or_nothing` followed by a plain SELECT whenever the caller needs
    the row after a conflict: on MariaDB that SELECT may not see a row a concurrent transaction committed
    (issue 13, case 7); this reads back with :func:`latest_committed`. ``key_columns`` name one unique
    key of ``table``, and ``values`` must carry them.
    """
    if not key_columns or any(name not in table.c or name not in values for name in key_columns):
        raise ValueError(f"insert_or_get needs key column(s) of {table.name} present in values")
    inserted = await insert_or_nothing(session, table, values)
    query = select(table).where(*(table.c[name] == values[name] for name in key_columns))
    row = (await session.execute(latest_committed(session, query))).one_or_none()
    return InsertOrGet(inserted, row)


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
