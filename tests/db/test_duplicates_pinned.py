"""The duplicate clean-up's exact results: what scan reports, what each step returns, what restore leaves.

Written to kill the mutants `make mutation` found surviving in ``db/duplicates.py`` (docs/TESTING.md):
scan's examples and its default limit, the counts archive/delete return, restore's messages, and restore
removing the archive row it put back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text

from voicebook.db import duplicates, migrate
from voicebook.db.base import UTCDateTime
from voicebook.db.duplicates import DuplicateGroup, RestoreError
from voicebook.db.session import make_engine

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GROUPS = 21  # one more than scan's default limit of examples


def _run(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _insert(conn: Connection, rows: list[tuple[int, str, int]]) -> None:
    """(id, uid, minutes after T0 created); call_id names the row."""
    ts = UTCDateTime()
    conn.execute(
        text(
            "INSERT INTO appointments (id, calcom_booking_uid, call_id, start_at, status, source, "
            "created_at, updated_at) "
            "VALUES (:id, :uid, :call, :start, 'booked', 'voicebook', :created, :created)"
        ),
        [
            {
                "id": id_,
                "uid": uid,
                "call": f"call_{id_}",
                "start": ts.process_bind_param(T0, conn.dialect),
                "created": ts.process_bind_param(T0 + timedelta(minutes=minutes), conn.dialect),
            }
            for id_, uid, minutes in rows
        ],
    )


@pytest.fixture
def before_the_index(db_url: str) -> Iterator[str]:
    """The schema of revision 0001, where duplicates can still exist; back to head afterwards."""
    migrate.downgrade(db_url, "0001")
    try:
        yield db_url
    finally:
        _run(db_url, lambda c: c.execute(text("DELETE FROM appointment_duplicates_archive")))
        _run(db_url, lambda c: c.execute(text("DELETE FROM appointments")))
        migrate.upgrade(db_url, "head")


def test_scan_reports_each_group_and_at_most_limit_examples(before_the_index: str) -> None:
    url = before_the_index
    # group i: the newer row (id 100+i) was inserted first, the older one (id 200+i) is kept
    rows = [(100 + i, f"uid{i:02d}", 10) for i in range(GROUPS)] + [
        (200 + i, f"uid{i:02d}", 0) for i in range(GROUPS)
    ]
    _run(url, lambda c: _insert(c, [*rows, (300, "single", 0)]))
    scan = _run(url, duplicates.scan)
    assert (scan.groups, scan.rows_to_archive) == (GROUPS, GROUPS)
    assert len(scan.examples) == 20
    assert scan.examples[0] == DuplicateGroup("uid00", 200, (100,))
    two = _run(url, lambda c: duplicates.scan(c, limit=2))
    assert two.examples == (DuplicateGroup("uid00", 200, (100,)), DuplicateGroup("uid01", 201, (101,)))


def test_archive_and_delete_return_the_rows_they_touched(before_the_index: str) -> None:
    url = before_the_index
    assert _run(url, duplicates.archive_duplicates) == 0
    assert _run(url, duplicates.delete_archived) == 0
    _run(url, lambda c: _insert(c, [(1, "uidA", 0), (2, "uidA", 5), (3, "uidA", 9), (4, "uidB", 0)]))
    assert _run(url, duplicates.archive_duplicates) == 2
    assert _run(url, duplicates.delete_archived) == 2
    assert _run(
        url, lambda c: [r[0] for r in c.execute(text("SELECT id FROM appointments ORDER BY id"))]
    ) == [1, 4]


def _archive_of(conn: Connection) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT original_id, kept_id, call_id, reason FROM appointment_duplicates_archive ORDER BY id"
            )
        )
    ]


def test_restore_removes_its_archive_row_and_says_why_it_refuses(before_the_index: str) -> None:
    url = before_the_index
    _run(url, lambda c: _insert(c, [(1, "uidA", 0), (2, "uidA", 5)]))
    _run(url, duplicates.archive_duplicates)
    _run(url, duplicates.delete_archived)
    archive_id = _run(
        url, lambda c: c.execute(text("SELECT id FROM appointment_duplicates_archive")).scalar_one()
    )
    with pytest.raises(RestoreError) as missing:
        _run(url, lambda c: duplicates.restore(c, 9999))
    assert str(missing.value) == "no archived appointment with id 9999"
    with pytest.raises(RestoreError) as held:
        _run(url, lambda c: duplicates.restore(c, archive_id))
    assert str(held.value) == (
        "appointment 1 holds booking uid uidA; use --replace to archive it and restore this one"
    )
    assert _run(url, lambda c: duplicates.restore(c, archive_id, replace=True)) == 2
    assert _run(
        url, lambda c: [tuple(r) for r in c.execute(text("SELECT id, call_id FROM appointments"))]
    ) == [(2, "call_2")]
    assert _run(url, _archive_of) == [(1, 2, "call_1", f"replaced by restore of archive row {archive_id}")]
    # and back again, now with nothing holding the uid: a plain restore, and the archive is empty
    (again,) = _run(
        url, lambda c: [r[0] for r in c.execute(text("SELECT id FROM appointment_duplicates_archive"))]
    )
    _run(url, lambda c: c.execute(text("DELETE FROM appointments")))
    assert _run(url, lambda c: duplicates.restore(c, again)) == 1
    assert _run(url, _archive_of) == []
