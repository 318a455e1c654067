"""``insert_or_get`` reads back what a concurrent transaction committed (issue 13, case 7).

Under MariaDB's REPEATABLE READ, the first plain SELECT of a transaction fixes its snapshot. When a
concurrent transaction then commits a row with our key, our ``INSERT IGNORE`` waits on it, conflicts and
inserts nothing — and a plain SELECT afterwards still reads the old snapshot and finds nothing
("attempt claim neither inserted nor found"). ``insert_or_get`` reads back with a locking read, which
sees the latest committed version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tests.factories import company_row

from voicebook.db.models import Company
from voicebook.db.queries import insert_or_get, insert_or_nothing, latest_committed

pytestmark = pytest.mark.asyncio

NOW = datetime(2030, 3, 4, 7, 0, tzinfo=UTC)
COMPANIES: Table = Company.__table__  # type: ignore[assignment]


def _company(slug: str, name: str) -> dict[str, Any]:
    return company_row(slug, NOW, name=name)


async def test_inserts_then_gets_the_same_row(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        first = await insert_or_get(session, COMPANIES, _company("salon", "First"), ("slug",))
        again = await insert_or_get(session, COMPANIES, _company("salon", "Second"), ("slug",))
    assert first.inserted is True
    assert again.inserted is False
    assert first.row is not None
    assert again.row is not None
    assert (again.row.id, again.row.name) == (first.row.id, "First")
    inserted, row = again  # unpacks as (inserted, row)
    assert inserted is False
    assert row is not None


async def test_key_columns_must_be_given(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        with pytest.raises(ValueError, match="key column"):
            await insert_or_get(session, COMPANIES, _company("salon", "X"), ())
        with pytest.raises(ValueError, match="key column"):
            await insert_or_get(session, COMPANIES, _company("salon", "X"), ("nope",))


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
async def test_reads_back_a_row_committed_after_the_snapshot(engine: AsyncEngine) -> None:
    """T1 takes a snapshot, T2 commits the key, T1's insert-or-nothing conflicts and must find T2's row."""
    async with AsyncSession(engine) as t1, t1.begin():
        assert (await t1.execute(select(COMPANIES.c.id))).all() == []  # T1's snapshot
        async with AsyncSession(engine) as t2, t2.begin():
            assert await insert_or_nothing(t2, COMPANIES, _company("salon", "T2"))
        # The old helper alone: nothing inserted, and on MariaDB a plain SELECT cannot see T2's row.
        assert not await insert_or_nothing(t1, COMPANIES, _company("salon", "T1"))
        plain = (await t1.execute(select(COMPANIES.c.name).where(COMPANIES.c.slug == "salon"))).all()
        if engine.dialect.name in ("mysql", "mariadb"):
            assert plain == []  # the hazard is real, so the test below proves something
        got = await insert_or_get(t1, COMPANIES, _company("salon", "T1"), ("slug",))
        assert got.inserted is False
        assert got.row is not None
        assert got.row.name == "T2"
        latest = await t1.execute(latest_committed(t1, select(COMPANIES.c.name)))
        assert latest.scalars().all() == ["T2"]
