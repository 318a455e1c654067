"""The booking path's two transactions, run on the pooled driver connection without SQLAlchemy's
per-statement execution machinery.

Why: a booking runs seven small statements in two transactions (the write-ahead claim, then the
record). Through ``AsyncConnection.execute`` each statement paid for a greenlet, an execution context,
parameter construction, a result object and the async proxies — about as much CPU as asyncpg's own work
for the statement (issue 17: ≈ 330 µs per transaction of three statements on PostgreSQL, against 250 µs
for the whole transaction on the bare driver). This module keeps what matters from SQLAlchemy and drops
the rest:

- **kept**: the statements (SQLAlchemy Core objects, compiled by the engine's own dialect, so the SQL,
  the bind casts and the type processing — UTC datetimes, JSON — are byte for byte what
  ``Connection.execute`` sends), the connection pool (check-out with its pre-ping window, check-in), the
  DBAPI adapters' exception translation, and the exceptions callers catch: every driver error comes out
  as the same ``sqlalchemy.exc.DBAPIError`` subclass (``IntegrityError`` for layer 4, the deadlock
  errors ``retrying_conflicts`` retries), and a lost connection invalidates the pool as before;
- **dropped**: one greenlet per statement (two per transaction remain: check-out and check-in), the
  execution context, the result machinery (a :class:`LeanResult` answers the few questions the booking
  path asks: ``one_or_none``, ``scalar_one_or_none``, ``rowcount``, ``inserted_primary_key``), events
  per statement (none are used), and compiling per call (a statement compiles once per dialect and set
  of parameter names; the booking path's statements are built once, see ``db.queries``).

It reaches into SQLAlchemy's async DBAPI adapters (``_prepare_and_execute``, ``_transaction``,
``_handle_exception``) and compiled statements (``_bind_processors``, ``_result_columns``), which is why
``pyproject.toml`` pins SQLAlchemy's minor version; ``tests/db/test_lean.py`` runs every part of it
against SQLite, PostgreSQL and MariaDB, and the booking suites run on it.

Only what the booking path needs is supported: single-row execution of INSERT / UPDATE / SELECT with
bound parameters, an expanding (``IN``) parameter taking its values in the call as a list or tuple. What
it cannot run exactly as SQLAlchemy would is refused (``NotImplementedError``), never run half-right:
literal-execute, escaped-name and callable bind parameters, an ``IN`` whose values are missing, bound in
the statement or not a list or tuple, and a textual SELECT (its columns unknown to the compiler).
"""

from __future__ import annotations

import asyncio
import collections
import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

__all__ = ["LeanConnection", "LeanResult", "lean_transaction"]

_REQUIRED = object()
# (column index, result processor) for the columns that have one, and the row class
_Shape = tuple[list[tuple[int, Any]], Any]
_PLAN_CACHE_SIZE = 512  # statements × parameter-name sets; the booking path uses about a dozen
_STATUS_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


class LeanResult:
    """The rows (or row count) of one executed statement, with the accessors the booking path uses."""

    __slots__ = ("_rows", "inserted_primary_key", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int, inserted_primary_key: tuple[Any, ...] | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.inserted_primary_key = inserted_primary_key

    def all(self) -> list[Any]:
        return list(self._rows)

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise exc.NoResultFound("No row was found when one was required")
        return self.one_or_none()

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


def _row_class(keys: Sequence[str]) -> type[tuple[Any, ...]]:
    """A tuple with attribute access by column name and ``_mapping``, like SQLAlchemy's ``Row``."""
    base = collections.namedtuple("LeanRow", keys, rename=True)  # type: ignore[misc]
    names = tuple(keys)

    def _mapping(self: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(names, self, strict=True))

    return type("LeanRow", (base,), {"__slots__": (), "_mapping": property(_mapping)})


@dataclass(slots=True)
class _Plan:
    """One statement compiled for one dialect and one set of parameter names (and, once it has returned
    rows, their shape)."""

    sql: str
    # Per positional parameter: its name, its index in that parameter's list (an expanded IN; else -1),
    # a fixed value (a literal bound in the statement) or _REQUIRED, and the dialect's bind processor.
    slots: tuple[tuple[str, int, Any, Callable[[Any], Any] | None], ...]
    # Python-side column defaults (INSERT) and onupdate values (UPDATE) the statement needs computed.
    prefetch: tuple[tuple[str, Callable[[], Any]], ...]
    compiled: SQLCompiler
    pk_names: tuple[str, ...]  # the table's primary key, for ``inserted_primary_key`` of an INSERT
    returning_pk: bool  # the INSERT returns its primary key (PostgreSQL's implicit RETURNING)
    is_insert: bool
    shape: _Shape | None = None  # set by ``_Plans.row_shape`` on the first rows


def _default_of(column: Any, update: bool) -> Callable[[], Any]:
    default = column.onupdate if update else column.default
    if default is None or not (default.is_callable or default.is_scalar):  # pragma: no cover - unused
        raise NotImplementedError(f"column default of {column} is not a Python value or callable")
    if default.is_scalar:
        value = default.arg
        return lambda: value
    fn = default.arg  # SQLAlchemy wraps a zero-argument callable to take the (unused) context
    return lambda: fn(None)


def _plan(dialect: Dialect, stmt: Any, names: tuple[str, ...], lengths: Mapping[str, int]) -> _Plan:
    """Compile ``stmt`` for ``dialect`` with these parameter names; expanding (``IN``) parameters are
    expanded for the given list lengths, so each length has its plan (as SQLAlchemy renders them)."""
    compiled: SQLCompiler = stmt.compile(dialect=dialect, column_keys=list(names))
    if compiled.literal_execute_params or compiled.escaped_bind_names:
        raise NotImplementedError("lean execution: literal-execute parameters or escaped names")
    if not compiled.positional or compiled.positiontup is None:  # pragma: no cover - all three are positional
        raise NotImplementedError(f"lean execution: paramstyle {dialect.paramstyle}")
    fixed: dict[str, Any] = {}
    for bind, name in compiled.bind_names.items():
        if bind.callable is not None:  # evaluated per execution; refused (tested)
            raise NotImplementedError("lean execution: callable bind parameters")
        fixed[name] = _REQUIRED if bind.required else bind.value
    sql, positions = compiled.string, list(compiled.positiontup)
    processors: Mapping[str, Any] = compiled._bind_processors
    source: dict[str, tuple[str, int]] = {}  # expanded name -> (parameter, index in its list)
    if compiled.post_compile_params:
        expanding = [compiled.bind_names[b] for b in compiled.post_compile_params]
        for name in expanding:
            # Without a length the IN would be expanded empty and match nothing, where SQLAlchemy expands
            # the bound list or any iterable, or refuses a missing value.
            if name not in lengths:
                raise NotImplementedError(f"lean execution: IN parameter {name!r} needs a list or tuple")
        sample: dict[str, Any] = dict.fromkeys(fixed)
        sample.update({name: [None] * lengths[name] for name in expanding})
        state = compiled.construct_expanded_state(sample, escape_names=False)
        sql, positions = state.statement, list(state.positiontup or ())
        processors = {**processors, **state.processors}  # the latter: those of the expanded names
        for name, expanded in state.parameter_expansion.items():
            source.update({e: (name, i) for i, e in enumerate(expanded)})
    slots = []
    for name in positions:
        param, index = source.get(name, (name, -1))
        slots.append((param, index, fixed.get(param, _REQUIRED), processors.get(name)))
    prefetch = tuple((c.key, _default_of(c, False)) for c in compiled.insert_prefetch) + tuple(
        (c.key, _default_of(c, True)) for c in compiled.update_prefetch
    )
    table = getattr(stmt, "table", None)
    is_insert = bool(compiled.isinsert)
    pk_names = tuple(c.key for c in table.primary_key) if is_insert and table is not None else ()
    returning_pk = bool(compiled.implicit_returning)
    return _Plan(sql, tuple(slots), prefetch, compiled, pk_names, returning_pk, is_insert)


class _Plans:
    """Compiled plans per (statement, parameter names); bounded, as ad-hoc statements pass through too."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._plans: dict[tuple[Any, tuple[str, ...], tuple[int, ...]], _Plan] = {}

    def get(self, stmt: Any, params: Mapping[str, Any]) -> _Plan:
        # The names in the caller's order (one code path passes them in one order; another order only
        # costs another plan). List values may feed an expanding IN: their lengths are part of the plan
        # (a JSON list just shares one plan per length).
        names = tuple(params)
        lengths = tuple(len(v) for v in params.values() if type(v) is list or type(v) is tuple)
        key = (stmt, names, lengths)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            sizes = {n: len(v) for n, v in params.items() if type(v) is list or type(v) is tuple}
            plan = self._plans[key] = _plan(self.dialect, stmt, tuple(sorted(names)), sizes)
        return plan

    def row_shape(self, plan: _Plan, description: Sequence[Any], coltype: Callable[[Any], Any]) -> _Shape:
        """Result processors (by the driver's column types, as SQLAlchemy picks them) and the row class."""
        # Per plan: one statement on one database returns the same column types every time.
        shape = plan.shape
        if shape is None:
            coltypes = tuple(coltype(d) for d in description)
            columns = plan.compiled._result_columns
            if len(columns) != len(description):  # a textual statement (refused, tested)
                raise NotImplementedError("lean execution: result columns unknown to the compiler")
            procs = [
                (i, processor)
                for i, (col, code) in enumerate(zip(columns, coltypes, strict=True))
                if (processor := col.type._cached_result_processor(self.dialect, code)) is not None
            ]
            shape = plan.shape = (procs, _row_class([col.keyname for col in columns]))
        return shape


# One set of plans per dialect (an engine's); forgotten with the engine.
_PLANS: weakref.WeakKeyDictionary[Dialect, _Plans] = weakref.WeakKeyDictionary()


def _plans_for(dialect: Dialect) -> _Plans:
    plans = _PLANS.get(dialect)
    if plans is None:
        plans = _PLANS[dialect] = _Plans(dialect)
    return plans


# --- the drivers ------------------------------------------------------------------------------------

# rows, description (the driver's column descriptions; see ``_Driver.coltype``), row count, lastrowid
_Raw = tuple[list[Any], Sequence[Any] | None, int, int | None]


class _Driver:
    """One statement at a time on an adapted DBAPI connection; errors leave as the adapter's DBAPI errors."""

    def __init__(self, adapter: Any, dialect: Dialect) -> None:
        self.adapter = adapter
        self.dialect = dialect

    async def run(self, sql: str, args: list[Any]) -> _Raw:
        raise NotImplementedError

    @staticmethod
    def coltype(column: Any) -> Any:
        """The DBAPI type code of one column of the description ``run`` returned."""
        return column[1]

    async def _end(self, commit: bool) -> None:
        """Commit (True) or roll back (False) the connection's transaction."""
        raise NotImplementedError

    async def commit(self) -> None:
        await self._end(True)

    async def rollback(self) -> None:
        await self._end(False)


class _Asyncpg(_Driver):
    """SQLAlchemy's asyncpg adapter, awaited directly: its prepared-statement cache, its lazy ``BEGIN``
    (the transaction starts with the first statement, as with ``Connection.execute``), its translation of
    asyncpg's exceptions and its row count from the command status."""

    async def run(self, sql: str, args: list[Any]) -> _Raw:
        # What the adapter's cursor does in ``_prepare_and_execute``, minus building a DBAPI description
        # and a row deque per statement: the column types are read once per plan (``coltype``).
        adapter = self.adapter
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            try:
                prepared, attributes = await adapter._prepare(sql, self.dialect._invalidate_schema_cache_asof)  # type: ignore[attr-defined]
                rows = await prepared.fetch(*args)
                status = prepared.get_statusmsg()
            except Exception as error:
                adapter._handle_exception(error)
                raise  # pragma: no cover - the adapter always raises (translated)
        counted = _STATUS_COUNT.match(status or "")
        return rows, attributes or None, int(counted.group(1)) if counted else -1, None

    @staticmethod
    def coltype(column: Any) -> Any:
        return column.type.oid

    async def _end(self, commit: bool) -> None:
        adapter = self.adapter
        if adapter._transaction is None:
            return
        end = adapter._transaction.commit if commit else adapter._transaction.rollback
        try:
            await adapter._call_and_discard(end)
        except Exception as error:
            adapter._handle_exception(error)
            raise  # pragma: no cover - the adapter always raises (translated)


class _Generic(_Driver):
    """aiosqlite and aiomysql: the driver opens its transaction implicitly (as under SQLAlchemy), and the
    adapter translates its exceptions."""

    async def _execute(self, sql: str, args: list[Any]) -> _Raw:
        raise NotImplementedError

    async def run(self, sql: str, args: list[Any]) -> _Raw:
        adapter = self.adapter
        try:
            async with adapter._execute_mutex:
                return await self._execute(sql, args)
        except Exception as error:
            adapter._handle_exception(error)
            raise  # pragma: no cover - the adapter always raises (translated)

    async def _end(self, commit: bool) -> None:
        connection = self.adapter._connection
        try:
            await (connection.commit() if commit else connection.rollback())
        except Exception as error:
            self.adapter._handle_exception(error)
            raise  # pragma: no cover - as above


class _Aiosqlite(_Generic):
    """Each aiosqlite call is a hop to the connection's thread and back (a queue, a future, a wake-up of
    the event loop), so a statement is one hop: executed, fetched and counted in that thread, by
    aiosqlite's own ``_execute`` on its ``sqlite3`` connection — as SQLAlchemy's adapter reaches into
    aiosqlite's queue for its isolation-level setter. The rows are fetched in full, so the statement is
    finished when the hop returns."""

    @staticmethod
    def _in_thread(conn: Any, sql: str, args: list[Any]) -> _Raw:
        cursor = conn.execute(sql, args)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return rows, description, cursor.rowcount, cursor.lastrowid

    async def _execute(self, sql: str, args: list[Any]) -> _Raw:
        connection = self.adapter._connection
        raw: _Raw = await connection._execute(self._in_thread, connection._conn, sql, args)
        return raw


class _Aiomysql(_Generic):
    async def _execute(self, sql: str, args: list[Any]) -> _Raw:
        # The adapter's cursor class (it skips a SHOW WARNINGS round trip per statement); a buffered
        # cursor, so fetching and closing do no I/O.
        cursor = await self.adapter._connection.cursor(self.adapter.dbapi.Cursor)
        try:
            await cursor.execute(sql, args)
            description = cursor.description
            rows = list(await cursor.fetchall()) if description else []
            return rows, description, cursor.rowcount, cursor.lastrowid
        finally:
            await cursor.close()


_DRIVERS: Mapping[str, type[_Driver]] = {"asyncpg": _Asyncpg, "aiosqlite": _Aiosqlite, "aiomysql": _Aiomysql}


# --- the connection ---------------------------------------------------------------------------------


class LeanConnection:
    """One transaction's statements (see the module docstring); made by :func:`lean_transaction`."""

    def __init__(self, dialect: Dialect, driver: _Driver, hide_parameters: bool) -> None:
        self.dialect = dialect
        self._driver = driver
        self._plans = _plans_for(dialect)
        self._hide_parameters = hide_parameters
        self.lost: BaseException | None = None  # set when the connection was lost: invalidate, not reuse

    async def execute(self, stmt: Any, params: Mapping[str, Any] | None = None) -> LeanResult:
        values = params or {}
        plan = self._plans.get(stmt, values)
        if plan.prefetch:  # Python-side defaults go into a copy: the caller's mapping is left alone
            values = dict(values)
            for name, default in plan.prefetch:
                if name not in values:
                    values[name] = default()
        args: list[Any] = []
        for name, index, fixed, processor in plan.slots:
            value = values.get(name, fixed)
            if index >= 0 and value is not _REQUIRED:
                value = value[index]
            if value is _REQUIRED:
                raise exc.ArgumentError(f"A value is required for bind parameter {name!r}")
            args.append(processor(value) if processor is not None else value)
        try:
            rows, description, rowcount, lastrowid = await self._driver.run(plan.sql, args)
        except self.dialect.loaded_dbapi.Error as error:
            raise self._wrap(error, plan.sql, args) from error
        if description:
            processors, row_class = self._plans.row_shape(plan, description, self._driver.coltype)
            made = row_class._make
            if processors:
                processed = []
                for row in rows:
                    cells = list(row)
                    for i, processor in processors:
                        cells[i] = processor(cells[i])
                    processed.append(made(cells))
                rows = processed
            else:
                rows = [made(row) for row in rows]
        pk = None
        if plan.is_insert:
            if plan.returning_pk:
                pk = tuple(rows[0]) if rows else None
            else:
                pk = tuple(values.get(name, lastrowid) for name in plan.pk_names)
        return LeanResult(rows, rowcount, pk)

    def _wrap(self, error: Exception, sql: str, args: Any) -> exc.DBAPIError:
        """The driver's error as ``Connection.execute`` raises it; a lost connection is remembered."""
        lost = self.dialect.is_disconnect(error, self._driver.adapter, None)  # type: ignore[arg-type]
        if lost:
            self.lost = error
        wrapped = exc.DBAPIError.instance(
            sql,
            args,
            error,
            self.dialect.loaded_dbapi.Error,
            hide_parameters=self._hide_parameters,
            connection_invalidated=lost,
            dialect=self.dialect,
        )
        assert isinstance(wrapped, exc.DBAPIError)  # a DBAPI error always wraps as one
        return wrapped

    async def _finish(self, commit: bool) -> None:
        try:
            await (self._driver.commit() if commit else self._driver.rollback())
        except self.dialect.loaded_dbapi.Error as error:
            raise self._wrap(error, "COMMIT" if commit else "ROLLBACK", ()) from error


def _discard(pool: Any, fairy: Any, error: BaseException | None) -> None:
    """A lost (or interrupted) connection leaves the pool: the pool is marked invalid as SQLAlchemy does
    after a disconnect, so older connections are replaced on their next check-out too."""
    pool._invalidate(fairy, error if isinstance(error, Exception) else None)
    fairy.close()


@asynccontextmanager
async def lean_transaction(engine: AsyncEngine) -> AsyncIterator[LeanConnection]:
    """One transaction on a pooled connection: commit on success, roll back on any exception.

    The statements inside run through :meth:`LeanConnection.execute`. A lost connection, or a
    transaction interrupted by cancellation (its state on the wire is unknown), is invalidated instead
    of returned to the pool.
    """
    sync_engine = engine.sync_engine
    fairy = await greenlet_spawn(sync_engine.raw_connection)
    dialect = sync_engine.dialect
    driver_cls = _DRIVERS.get(dialect.driver)
    if driver_cls is None:  # pragma: no cover - we configure exactly these three drivers
        fairy.close()
        raise NotImplementedError(f"lean execution: driver {dialect.driver}")
    conn = LeanConnection(dialect, driver_cls(fairy.dbapi_connection, dialect), sync_engine.hide_parameters)
    try:
        yield conn
        await conn._finish(commit=True)
    except BaseException as error:
        interrupted = not isinstance(error, Exception)
        if conn.lost is None and not interrupted:
            try:
                await conn._finish(commit=False)
            except exc.DBAPIError:
                conn.lost = error  # a transaction that cannot be rolled back: the connection goes
            except BaseException:
                # Cancelled during the rollback: its state on the wire is unknown, so the connection is
                # discarded (never left checked out, lost to the pool) and the cancel goes on up.
                await asyncio.shield(greenlet_spawn(_discard, sync_engine.pool, fairy, None))
                raise
        if conn.lost is not None or interrupted:
            await asyncio.shield(greenlet_spawn(_discard, sync_engine.pool, fairy, conn.lost or error))
        else:
            await greenlet_spawn(fairy._close_special, True)
        raise
    await greenlet_spawn(fairy._close_special, True)  # committed: a clean connection goes back
