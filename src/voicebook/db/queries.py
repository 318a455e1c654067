"""Repository functions over the async session. They flush when needed and never commit."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import structlog
from sqlalchemy import Row, Select, Table, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.lean import LeanConnection
from voicebook.db.models import Company, PhoneNumber, Service

S = TypeVar("S", bound=Select[Any])
# What the insert-or-get helpers run on: a session, or the lean connection where the booking path keeps
# its two transactions (Core statements only; see ``db.session.core_transaction``).
Executor = AsyncSession | LeanConnection


def dialect_name(db: Executor) -> str:
    return db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name


async def insert_or_nothing(session: Executor, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that silently does nothing on a unique-key conflict; True when the row was inserted.

    The insert itself is the lock (never check-then-insert): PostgreSQL and SQLite use
    ``ON CONFLICT DO NOTHING``, MariaDB ``INSERT IGNORE``. Conflicts on any unique key count.
    To read the row after a conflict, use :func:`insert_or_get`: a plain SELECT may miss it on MariaDB.
    """
    result = await session.execute(_insert_ignoring_conflicts(session, table), values)
    return bool(getattr(result, "rowcount", 0))


def _insert_ignoring_conflicts(session: Executor, table: Table, *, returning: bool = False) -> Any:
    """The statement without its values: they are bound when it is executed, so it is the same cached
    statement for every row (values baked in with ``.values()`` make a new cache key to build per call)."""
    return _ignoring_conflicts(dialect_name(session), table, returning)


@functools.cache
def _ignoring_conflicts(dialect: str, table: Table, returning: bool) -> Any:
    """Built once per dialect and table: constructing it (and its ``RETURNING`` of every column) cost
    more than executing it. Statements are immutable, so one object serves every call."""
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table).prefix_with("IGNORE")
    else:  # pragma: no cover - we support exactly three engines
        raise NotImplementedError(dialect)
    return stmt.returning(*table.c) if returning else stmt


class InsertOrGet(NamedTuple):
    """What :func:`insert_or_get` found: unpacks as ``inserted, row``."""

    inserted: bool
    """True when this transaction inserted the row (and so owns it)."""
    row: Row[Any] | None
    """The row holding the key — ours or the concurrent winner's. ``None`` only when the conflict was on
    another unique key than ``key_columns``, or the winner's row is gone again (deleted since)."""


def is_mysql(session: Executor) -> bool:
    """MariaDB and MySQL share InnoDB's REPEATABLE READ snapshots, hence :func:`latest_committed`."""
    return dialect_name(session) in ("mysql", "mariadb")


def latest_committed(session: Executor, stmt: S) -> S:
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
    session: Executor, table: Table, values: dict[str, Any], key_columns: Sequence[str]
) -> InsertOrGet:
    """Insert-or-nothing, then read back the row holding ``key_columns`` — ours or a concurrent winner's.

    Use this instead of :func:`insert_or_nothing` followed by a plain SELECT whenever the caller needs
    the row after a conflict: on MariaDB that SELECT may not see a row a concurrent transaction committed
    (issue 13, case 7); this reads back with :func:`latest_committed`. ``key_columns`` name one unique
    key of ``table``, and ``values`` must carry them.
    """
    if not key_columns or any(name not in table.c or name not in values for name in key_columns):
        raise ValueError(f"insert_or_get needs key column(s) of {table.name} present in values")
    if dialect_name(session) in ("postgresql", "sqlite"):
        # One statement when we insert (the usual case on the booking path): ``ON CONFLICT DO NOTHING
        # RETURNING`` gives our row back, and returns nothing on a conflict, which is read back below
        # exactly as before. MariaDB's ``INSERT IGNORE`` keeps the two-statement path.
        stmt = _insert_ignoring_conflicts(session, table, returning=True)
        mine = (await session.execute(stmt, values)).one_or_none()
        if mine is not None:
            return InsertOrGet(True, mine)
        inserted = False
    else:
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


# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout; PostgreSQL: 40P01 deadlock, 40001 serialization.
_RETRYABLE_MYSQL = frozenset({1205, 1213})
_RETRYABLE_SQLSTATE = frozenset({"40P01", "40001"})
_W = TypeVar("_W")


def is_transient_conflict(exc: BaseException) -> bool:
    """The database aborted the transaction to break a lock cycle: nothing took effect, a retry may."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _RETRYABLE_MYSQL:
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in _RETRYABLE_SQLSTATE


async def retrying_conflicts(work: Callable[[], Awaitable[_W]], *, tries: int = 4) -> _W:
    """Run ``work`` (one whole transaction) again when the database aborted it as a deadlock victim.

    Safe only for a transaction that is retried whole: the aborted one changed nothing. Many concurrent
    insert-or-get claims of one key on MariaDB (shared locks from the read-back, then writes) can form
    such cycles; InnoDB picks a victim and expects the application to retry it.
    """
    for attempt in range(tries):
        try:
            return await work()
        except DBAPIError as exc:
            if attempt == tries - 1 or not is_transient_conflict(exc):
                raise
            structlog.get_logger("voicebook.db").info("db.transaction_retried", attempt=attempt + 1)
            await asyncio.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover
