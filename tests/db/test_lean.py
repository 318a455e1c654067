"""``db.lean``: the booking path's transactions without ``Connection.execute`` (issue 17), on all three
databases. Each test pins one thing the lean path must do exactly as SQLAlchemy's own execution does:
the values written and read back (type processing both ways), Python-side column defaults, primary keys,
row counts of compare-and-set updates (with an expanding ``IN``), the exceptions callers catch, and what
becomes of the transaction and the pooled connection after an error, a lost connection or a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.factories import company_row
from tests.server_sessions import end_session, kill, session_id

from voicebook.db import lean
from voicebook.db.lean import LeanConnection, lean_transaction
from voicebook.db.models import Company, GuardEvent, RateBudget
from voicebook.db.queries import insert_or_get, insert_or_nothing
from voicebook.db.session import make_engine

pytestmark = pytest.mark.asyncio

NOW = datetime(2030, 3, 4, 7, 0, 0, 123456, tzinfo=UTC)
COMPANIES: Table = Company.__table__  # type: ignore[assignment]
EVENTS: Table = GuardEvent.__table__  # type: ignore[assignment]
BUDGETS: Table = RateBudget.__table__  # type: ignore[assignment]
INSERT_COMPANY = insert(COMPANIES)
BY_SLUG = select(COMPANIES).where(COMPANIES.c.slug == bindparam("slug"))
RENAME_IF = (
    update(COMPANIES)
    .where(COMPANIES.c.id == bindparam("cid"), COMPANIES.c.locale.in_(bindparam("locales", expanding=True)))
    .values(name=bindparam("new_name"))
)


def _company(slug: str, **extra: Any) -> dict[str, Any]:
    return company_row(slug, NOW, **extra)


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _insert_twice(engine: AsyncEngine, slug: str) -> None:
    """One transaction that inserts the same company twice: the second insert violates ``slug``'s key."""
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company(slug))
        await conn.execute(INSERT_COMPANY, _company(slug))


async def _kill_own_backend(engine: AsyncEngine, conn: LeanConnection) -> None:
    """The server ends ``conn``'s session (as a restart or failover would) between two statements."""
    await kill(engine, await session_id(conn))
    await asyncio.sleep(0.2)


async def _lose_connection_midway(engine: AsyncEngine, slug: str) -> None:
    """A transaction that inserted a row, loses its connection and runs one more statement."""
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company(slug))
        await _kill_own_backend(engine, conn)
        await conn.execute(BY_SLUG, {"slug": slug})


async def _cancel_mid_transaction(engine: AsyncEngine, slug: str) -> None:
    """A transaction that inserted a row and is cancelled before it commits."""
    started = asyncio.Event()

    async def slow() -> None:
        async with lean_transaction(engine) as conn:
            await conn.execute(INSERT_COMPANY, _company(slug))
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait((task, waiting), return_when=asyncio.FIRST_COMPLETED)  # an insert that fails ends it
    waiting.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # or the insert's error


async def test_a_committed_insert_reads_back_the_same_through_sqlalchemy(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        result = await conn.execute(INSERT_COMPANY, _company("a"))
    (company_id,) = result.inserted_primary_key or (None,)
    async with engine.connect() as conn2:
        row = (await conn2.execute(select(COMPANIES).where(COMPANIES.c.slug == "a"))).one()
    assert row.id == company_id
    assert row.created_at == NOW  # an aware UTC datetime, microseconds kept, on every backend
    assert row.name == "Salon a"


async def test_a_select_reads_what_sqlalchemy_wrote_with_types_processed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(INSERT_COMPANY, _company("b"))
    async with lean_transaction(engine) as lean:
        row = (await lean.execute(BY_SLUG, {"slug": "b"})).one()
    assert row.created_at == NOW
    assert row.created_at.tzinfo is not None
    assert row._mapping["slug"] == "b"
    assert row.slug == "b"
    assert row[0] == row.id


async def test_python_side_defaults_and_json_are_written(engine: AsyncEngine) -> None:
    """guard_events.created_at has a Python default (no value given) and details is JSON."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with lean_transaction(engine) as conn:
        await conn.execute(
            insert(EVENTS),
            {"layer": "l", "verdict": "v", "reason": "r", "call_id": "c", "attempt_id": None,
             "company_id": None, "calcom_booking_uid": None, "details": {"k": [1, "ü"]}},
        )  # fmt: skip
    async with engine.connect() as conn2:
        row = (await conn2.execute(select(EVENTS))).one()
    assert row.details == {"k": [1, "ü"]}
    assert before <= row.created_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_the_callers_values_are_left_as_they_were(engine: AsyncEngine) -> None:
    """The Python-side default (created_at) is computed into a copy: a caller may reuse its mapping."""
    values = {"layer": "l", "verdict": "v", "reason": "r", "call_id": "c", "attempt_id": None,
              "company_id": None, "calcom_booking_uid": None, "details": None}  # fmt: skip
    given = dict(values)
    async with lean_transaction(engine) as conn:
        await conn.execute(insert(EVENTS), given)
        await conn.execute(insert(EVENTS), given)  # reused: each row gets its own default again
    assert given == values
    assert await _count(engine, EVENTS) == 2


async def test_an_update_counts_the_rows_it_moved_with_an_expanding_in(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        result = await conn.execute(INSERT_COMPANY, _company("c"))
        (cid,) = result.inserted_primary_key or (None,)
        missed = await conn.execute(RENAME_IF, {"cid": cid, "locales": ["en", "fr"], "new_name": "X"})
        one = await conn.execute(RENAME_IF, {"cid": cid, "locales": ["en", "de", "fr"], "new_name": "Y"})
        single = await conn.execute(RENAME_IF, {"cid": cid, "locales": ["de"], "new_name": "Z"})
        none = await conn.execute(RENAME_IF, {"cid": cid, "locales": [], "new_name": "W"})
    assert (missed.rowcount, one.rowcount, single.rowcount, none.rowcount) == (0, 1, 1, 0)
    async with lean_transaction(engine) as conn:
        assert (await conn.execute(BY_SLUG, {"slug": "c"})).one().name == "Z"


async def test_insert_or_get_and_insert_or_nothing_run_on_it(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        first = await insert_or_get(conn, COMPANIES, _company("d"), ("slug",))
        again = await insert_or_get(conn, COMPANIES, _company("d", name="Other"), ("slug",))
        inserted = await insert_or_nothing(conn, COMPANIES, _company("d"))
    assert (first.inserted, again.inserted, inserted) == (True, False, False)
    assert first.row is not None
    assert again.row is not None
    assert (again.row.id, again.row.name) == (first.row.id, "Salon d")


async def test_a_unique_violation_is_sqlalchemys_integrity_error_and_rolls_back(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        await _insert_twice(engine, "e")
    assert await _count(engine, COMPANIES) == 0  # the first insert went with the transaction
    async with lean_transaction(engine) as conn:  # and the pooled connection is usable again
        await conn.execute(INSERT_COMPANY, _company("e"))
    assert await _count(engine, COMPANIES) == 1


async def test_an_exception_in_the_body_rolls_back(engine: AsyncEngine) -> None:
    class Boom(Exception):
        pass

    async def fails() -> None:
        async with lean_transaction(engine) as conn:
            await conn.execute(INSERT_COMPANY, _company("f"))
            raise Boom

    with pytest.raises(Boom):
        await fails()
    assert await _count(engine, COMPANIES) == 0


async def test_one_raises_without_a_row_and_a_missing_parameter_is_refused(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        with pytest.raises(NoResultFound):
            (await conn.execute(BY_SLUG, {"slug": "nobody"})).one()
        assert (await conn.execute(BY_SLUG, {"slug": "nobody"})).one_or_none() is None
        with pytest.raises(Exception, match="slug"):
            await conn.execute(BY_SLUG, {})


async def test_a_cancelled_transaction_commits_nothing_and_leaves_a_working_pool(engine: AsyncEngine) -> None:
    await _cancel_mid_transaction(engine, "g")
    assert await _count(engine, COMPANIES) == 0
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("g"))
    assert await _count(engine, COMPANIES) == 1


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
async def test_a_lost_connection_is_a_dbapi_error_and_is_replaced(engine: AsyncEngine) -> None:
    """The server kills our backend mid-transaction: the error says the connection was invalidated, and
    the next transaction gets a fresh connection instead of the dead one."""
    with pytest.raises(DBAPIError) as caught:
        await _lose_connection_midway(engine, "h")
    assert caught.value.connection_invalidated
    assert await _count(engine, COMPANIES) == 0
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("h"))
    assert await _count(engine, COMPANIES) == 1


async def test_one_or_none_refuses_two_rows_and_the_scalars_read_the_first_column(
    engine: AsyncEngine,
) -> None:
    every = select(COMPANIES.c.id, COMPANIES.c.slug).order_by(COMPANIES.c.id)
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("m"))
        only = (await conn.execute(every)).scalar_one_or_none()
        none = (await conn.execute(BY_SLUG, {"slug": "nobody"})).scalar_one_or_none()
        await conn.execute(INSERT_COMPANY, _company("n"))
        both = await conn.execute(every)
        with pytest.raises(MultipleResultsFound):
            both.one_or_none()
        with pytest.raises(MultipleResultsFound):
            both.one()
        assert [row.slug for row in both.all()] == ["m", "n"]
        assert both.first().slug == "m"
        assert both.scalar() == only
    assert isinstance(only, int)
    assert none is None


async def test_an_update_without_updated_at_gets_the_columns_onupdate_value(engine: AsyncEngine) -> None:
    """``updated_at`` has ``onupdate=utc_now``: SQLAlchemy computes it for an UPDATE that does not set it,
    and so must the lean path (a Python-side default of an UPDATE, not of an INSERT)."""
    rename = update(COMPANIES).where(COMPANIES.c.slug == bindparam("s")).values(name=bindparam("n"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("u"))
        moved = await conn.execute(rename, {"s": "u", "n": "Renamed"})
    async with engine.connect() as conn2:
        row = (await conn2.execute(select(COMPANIES).where(COMPANIES.c.slug == "u"))).one()
    assert moved.rowcount == 1
    assert row.name == "Renamed"
    assert row.created_at == NOW  # the insert's own value: no default there
    assert before <= row.updated_at <= datetime.now(UTC) + timedelta(seconds=1)  # now, not NOW (2030)


async def test_a_driver_error_carries_its_statement_and_parameters(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError) as caught:
        await _insert_twice(engine, "s")
    assert caught.value.statement is not None
    assert caught.value.statement.startswith("INSERT INTO companies")
    assert "s.example" in list(caught.value.params or ())
    assert caught.value.connection_invalidated is False


async def test_hidden_parameters_stay_out_of_the_error(db_url: str) -> None:
    engine = make_engine(db_url, hide_parameters=True)
    try:
        with pytest.raises(IntegrityError) as caught:
            await _insert_twice(engine, "secret-slug")
        assert "secret-slug.example" not in str(caught.value)
    finally:
        await engine.dispose()


def _invalidations(engine: AsyncEngine) -> list[object]:
    seen: list[object] = []
    event.listen(engine.sync_engine.pool, "invalidate", lambda _conn, _rec, exc: seen.append(exc))
    return seen


async def test_an_error_returns_the_connection_to_the_pool_and_a_cancel_discards_it(
    engine: AsyncEngine,
) -> None:
    """After a rollback the connection is clean and goes back; after a cancel mid-transaction its state on
    the wire is unknown, so it is invalidated (closed), never handed to the next transaction."""
    seen = _invalidations(engine)

    with pytest.raises(IntegrityError):
        await _insert_twice(engine, "p")
    assert seen == []
    await _cancel_mid_transaction(engine, "q")
    assert len(seen) == 1


async def test_a_cancel_during_the_rollback_discards_the_connection(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error rolls back; a cancel that lands while the rollback is on the wire leaves the connection's
    state unknown: it is discarded, not left checked out (a pool slot lost for good), and the cancel
    propagates."""
    seen = _invalidations(engine)
    rolling_back = asyncio.Event()
    real_end = lean._Driver.rollback

    async def slow_rollback(self: Any) -> None:
        rolling_back.set()
        await asyncio.sleep(30)
        await real_end(self)  # pragma: no cover - cancelled above

    monkeypatch.setattr(lean._Driver, "rollback", slow_rollback)

    async def failing() -> None:
        async with lean_transaction(engine) as conn:
            await conn.execute(INSERT_COMPANY, _company("r"))
            raise ValueError("the work failed")

    task = asyncio.create_task(failing())
    await rolling_back.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert len(seen) == 1
    monkeypatch.undo()
    assert await _count(engine, COMPANIES) == 0


# --- from the mutation run with PostgreSQL and MariaDB (docs/TESTING.md, run 11) -----------------------


async def test_one_and_one_or_none_refuse_with_sqlalchemys_messages(engine: AsyncEngine) -> None:
    every = select(COMPANIES.c.id)
    async with engine.begin() as conn:
        await conn.execute(INSERT_COMPANY, _company("m"))
        await conn.execute(INSERT_COMPANY, _company("n"))
        with pytest.raises(MultipleResultsFound) as theirs_many:
            (await conn.execute(every)).one_or_none()
        with pytest.raises(NoResultFound) as theirs_none:
            (await conn.execute(BY_SLUG, {"slug": "nobody"})).one()
    async with lean_transaction(engine) as lean_conn:
        with pytest.raises(MultipleResultsFound) as many:
            (await lean_conn.execute(every)).one_or_none()
        with pytest.raises(NoResultFound) as none:
            (await lean_conn.execute(BY_SLUG, {"slug": "nobody"})).one()
    assert (str(many.value), str(none.value)) == (str(theirs_many.value), str(theirs_none.value))


async def test_first_and_scalar_of_no_rows_are_none(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        empty = await conn.execute(BY_SLUG, {"slug": "nobody"})
    assert (empty.first(), empty.scalar()) == (None, None)


async def test_only_an_insert_has_an_inserted_primary_key(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        selected = await conn.execute(BY_SLUG, {"slug": "nobody"})
    assert selected.inserted_primary_key is None


async def test_an_insert_with_its_own_primary_key_reports_that_key(engine: AsyncEngine) -> None:
    """``rate_budgets.key`` is a string the caller gives: not the driver's last row id (SQLite's rowid,
    MariaDB's 0)."""
    async with lean_transaction(engine) as conn:
        result = await conn.execute(insert(BUDGETS), {"key": "k-1", "tokens": 2.5, "refilled_at": 0.0})
    assert result.inserted_primary_key == ("k-1",)


async def test_a_double_column_reads_back_as_a_float(engine: AsyncEngine) -> None:
    """asyncpg's numeric result processor is chosen by the column's type code (float8 here)."""
    async with lean_transaction(engine) as conn:
        await conn.execute(insert(BUDGETS), {"key": "k-2", "tokens": 2.5, "refilled_at": 0.0})
        tokens = (await conn.execute(select(BUDGETS.c.tokens))).scalar_one()
    assert (tokens, type(tokens)) == (2.5, float)


async def test_a_column_labelled_with_a_python_keyword_is_read_by_position_and_mapping(
    engine: AsyncEngine,
) -> None:
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("kw"))
        row = (await conn.execute(select(COMPANIES.c.slug.label("from")))).one()
    assert (row[0], row._mapping["from"]) == ("kw", "kw")


async def test_a_row_takes_no_new_attributes_like_sqlalchemys(engine: AsyncEngine) -> None:
    """No ``__dict__`` per row (``__slots__``): a row stays a plain tuple, as small as SQLAlchemy's."""
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("ro"))
        row = (await conn.execute(BY_SLUG, {"slug": "ro"})).one()
    with pytest.raises(AttributeError):
        row.note = "x"


# ``companies`` seen through a Table whose ``name`` has a Python default and an onupdate that differ (the
# real ``updated_at`` has the same function for both, so it cannot tell them apart).
NAMED_BY_DEFAULTS = Table(
    "companies",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("slug", String(100)),
    Column("name", String(200), default="named by default", onupdate="named by onupdate"),
)


async def test_an_update_fills_a_column_it_does_not_set_with_its_onupdate_not_its_default(
    engine: AsyncEngine,
) -> None:
    table = NAMED_BY_DEFAULTS
    reslug = update(table).where(table.c.slug == bindparam("old")).values(slug=bindparam("new"))
    async with lean_transaction(engine) as conn:
        await conn.execute(INSERT_COMPANY, _company("o"))
        await conn.execute(reslug, {"old": "o", "new": "o2"})
        row = (await conn.execute(BY_SLUG, {"slug": "o2"})).one()
    assert row.name == "named by onupdate"


async def test_an_expanding_in_takes_tuples_of_any_length(engine: AsyncEngine) -> None:
    async with lean_transaction(engine) as conn:
        result = await conn.execute(INSERT_COMPANY, _company("t"))
        (cid,) = result.inserted_primary_key or (None,)
        missed = await conn.execute(RENAME_IF, {"cid": cid, "locales": ("en",), "new_name": "X"})
        hit = await conn.execute(RENAME_IF, {"cid": cid, "locales": ("fr", "de"), "new_name": "Y"})
    assert (missed.rowcount, hit.rowcount) == (0, 1)


LITERAL_REFUSED = "lean execution: literal-execute parameters or escaped names"
IN_REFUSED = "lean execution: IN parameter 'locales' needs a list or tuple"
BY_ID = COMPANIES.c.id == bindparam("cid")


@pytest.mark.parametrize(
    ("stmt", "params", "message"),
    [
        pytest.param(
            select(COMPANIES.c.id).where(COMPANIES.c.slug == bindparam("s", literal_execute=True)),
            {"s": "a"},
            LITERAL_REFUSED,
            id="literal-execute",
        ),
        pytest.param(
            select(COMPANIES.c.id).where(COMPANIES.c.slug == bindparam("a b")),
            {"a b": "a"},
            LITERAL_REFUSED,
            id="escaped-name",
        ),
        pytest.param(
            select(COMPANIES.c.id).where(COMPANIES.c.slug == bindparam("s", callable_=lambda: "a")),
            {},
            "lean execution: callable bind parameters",
            id="callable",
        ),
        pytest.param(
            text("SELECT 1"),
            {},
            "lean execution: result columns unknown to the compiler",
            id="textual-select",
        ),
        pytest.param(
            RENAME_IF, {"cid": 1, "new_name": "X", "locales": {"de"}}, IN_REFUSED, id="in-from-a-set"
        ),
        pytest.param(RENAME_IF, {"cid": 1, "new_name": "X"}, IN_REFUSED, id="in-without-values"),
        pytest.param(
            select(COMPANIES.c.id).where(BY_ID, COMPANIES.c.locale.in_(["de"])),
            {"cid": 1},
            "lean execution: IN parameter 'locale_1' needs a list or tuple",
            id="in-bound-in-the-statement",
        ),
    ],
)
async def test_what_it_cannot_run_as_sqlalchemy_would_is_refused(
    engine: AsyncEngine, stmt: Any, params: dict[str, Any], message: str
) -> None:
    """Never run half-right: e.g. an IN without a list of values would be expanded empty and match
    nothing, where SQLAlchemy matches the set's values or refuses a missing value."""
    async with lean_transaction(engine) as conn:
        with pytest.raises(NotImplementedError) as caught:
            await conn.execute(stmt, params)
    assert str(caught.value) == message


async def test_a_statement_compiles_once_per_engine(engine: AsyncEngine) -> None:
    """Its plan (SQL, processors, row class) is kept: a later execution, in a later transaction too, gets
    rows of the same class."""
    async with engine.begin() as conn:
        await conn.execute(INSERT_COMPANY, _company("p"))
    async with lean_transaction(engine) as conn:
        first = (await conn.execute(BY_SLUG, {"slug": "p"})).one()
    async with lean_transaction(engine) as conn:
        again = (await conn.execute(BY_SLUG, {"slug": "p"})).one()
    assert type(again) is type(first)


async def test_the_plans_are_bounded(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ad-hoc statements pass through too: a new plan beyond the bound starts the cache over, so the first
    statement compiles again (rows of a new class)."""
    monkeypatch.setattr(lean, "_PLAN_CACHE_SIZE", 2)
    async with engine.begin() as conn:
        await conn.execute(INSERT_COMPANY, _company("b"))
    async with lean_transaction(engine) as conn:
        first = (await conn.execute(BY_SLUG, {"slug": "b"})).one()
        await conn.execute(select(COMPANIES.c.id))
        await conn.execute(select(COMPANIES.c.slug))  # the third plan: the bound of two is reached
        again = (await conn.execute(BY_SLUG, {"slug": "b"})).one()
    assert type(again) is not type(first)


async def test_a_statement_that_counts_no_rows_reports_the_row_count_sqlalchemy_does(
    engine: AsyncEngine,
) -> None:
    """A SAVEPOINT's status carries no count: -1 on PostgreSQL and SQLite, MariaDB's 0 affected rows."""
    async with engine.begin() as conn:
        expected = (await conn.execute(text("SAVEPOINT probe"))).rowcount
    async with lean_transaction(engine) as lean_conn:
        counted = (await lean_conn.execute(text("SAVEPOINT probe"))).rowcount
    assert counted == expected


async def _running(other: Any, victim: int) -> bool:
    """Whether the server session ``victim`` is executing a statement right now."""
    if other.dialect.name == "postgresql":
        query = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND state = 'active'"
    else:
        query = "SELECT count(*) FROM information_schema.processlist WHERE id = :pid AND command = 'Query'"
    return bool((await other.execute(text(query), {"pid": victim})).scalar_one())


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
async def test_a_connection_lost_during_a_statement_is_reported_invalidated(engine: AsyncEngine) -> None:
    """Killed while the server runs the statement (not between two): the driver's error says only that
    the connection closed mid-operation, and the connection itself tells it was lost."""

    async def killed_in_flight() -> None:
        async with lean_transaction(engine) as conn:
            victim = await session_id(conn)
            sleep = select(func.pg_sleep(10) if conn.dialect.name == "postgresql" else func.sleep(10))

            killing = asyncio.Event()

            async def killer() -> None:
                async with engine.connect() as other:
                    for _ in range(100):  # until the victim runs the sleep (10 s at most)
                        if await _running(other, victim):
                            break
                        await asyncio.sleep(0.1)
                    killing.set()
                    await end_session(other, victim)

            task = asyncio.create_task(killer())
            try:
                await conn.execute(sleep)
            finally:
                if not killing.is_set():  # the sleep failed before it ran: nothing to kill
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    with pytest.raises(DBAPIError) as caught:
        await killed_in_flight()
    assert caught.value.connection_invalidated


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
async def test_a_failed_commit_is_a_dbapi_error_naming_the_commit(engine: AsyncEngine) -> None:
    async def killed_before_commit() -> None:
        async with lean_transaction(engine) as conn:
            await conn.execute(INSERT_COMPANY, _company("k"))
            await _kill_own_backend(engine, conn)

    with pytest.raises(DBAPIError) as caught:
        await killed_before_commit()
    assert (caught.value.statement, caught.value.params, caught.value.connection_invalidated) == (
        "COMMIT",
        (),
        True,
    )


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
async def test_a_lost_connection_is_invalidated_with_the_drivers_error(engine: AsyncEngine) -> None:
    """The pool's ``invalidate`` event (logging, metrics) gets the error that showed the connection lost."""
    seen = _invalidations(engine)
    with pytest.raises(DBAPIError) as caught:
        await _lose_connection_midway(engine, "v")
    assert seen == [caught.value.orig]


async def test_a_cancel_invalidates_the_connection_without_an_error(engine: AsyncEngine) -> None:
    """A cancel is no connection error: the pool's ``invalidate`` event gets no exception (it takes an
    ``Exception``; ``CancelledError`` is not one)."""
    seen = _invalidations(engine)
    await _cancel_mid_transaction(engine, "w")
    assert seen == [None]
