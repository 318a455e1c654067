"""The duplicate clean-up (migration 0002 and `voicebook duplicates`): nothing lost, oldest kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text

from voicebook.db import duplicates, migrate
from voicebook.db.base import UTCDateTime
from voicebook.db.session import make_engine

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _run(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _seed(conn: Connection) -> None:
    ts = UTCDateTime()

    def row(id_: int, uid: str, created: datetime, call: str) -> dict[str, Any]:
        return {
            "id": id_,
            "uid": uid,
            "call": call,
            "start": ts.process_bind_param(T0, conn.dialect),
            "created": ts.process_bind_param(created, conn.dialect),
        }

    rows = [
        row(1, "uidA", T0, "call_1"),
        row(2, "uidA", T0 + timedelta(minutes=35), "call_2"),
        row(3, "uidA", T0 + timedelta(minutes=40), "call_3"),
        row(4, "uidB", T0, "call_4"),
        row(5, "uidB", T0, "call_5"),  # same created_at: the lower id is kept
        row(6, "uidC", T0, "call_6"),  # no duplicate
        row(7, "uidD", T0 + timedelta(minutes=10), "call_7"),
        row(8, "uidD", T0, "call_8"),  # the oldest has the higher id: the oldest is kept, not the lowest id
    ]
    conn.execute(
        text(
            "INSERT INTO appointments (id, calcom_booking_uid, call_id, start_at, status, source, "
            "created_at, updated_at) "
            "VALUES (:id, :uid, :call, :start, 'booked', 'voicebook', :created, :created)"
        ),
        rows,
    )


def _state(conn: Connection) -> dict[str, Any]:
    kept = sorted(r[0] for r in conn.execute(text("SELECT id FROM appointments")))
    archived = sorted(
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            text(
                "SELECT original_id, kept_id, calcom_booking_uid, call_id FROM appointment_duplicates_archive"
            )
        )
    )
    indexes = {i["name"]: i["unique"] for i in inspect(conn).get_indexes("appointments")}
    return {"kept": kept, "archived": archived, "indexes": indexes}


class TestCleanupMigration:
    def test_archives_exactly_the_removed_rows_whole_and_adds_the_index(self, db_url: str) -> None:
        migrate.downgrade(db_url, "0001")
        try:
            _run(db_url, _seed)
            scan = _run(db_url, duplicates.scan)
            assert (scan.groups, scan.rows_to_archive) == (3, 4)
            migrate.upgrade(db_url, "0002")
            state = _run(db_url, _state)
            assert state["kept"] == [1, 4, 6, 8]
            assert state["archived"] == [
                (2, 1, "uidA", "call_2"),
                (3, 1, "uidA", "call_3"),
                (5, 4, "uidB", "call_5"),
                (7, 8, "uidD", "call_7"),
            ]
            assert state["indexes"]["uq_appointment_calcom_booking_uid"]
            # downgrade + upgrade round-trips: the index goes and comes back, nothing else moves
            migrate.downgrade(db_url, "0001")
            assert "uq_appointment_calcom_booking_uid" not in _run(db_url, _state)["indexes"]
            migrate.upgrade(db_url, "head")
            assert _run(db_url, _state)["archived"] == state["archived"]
        finally:
            migrate.upgrade(db_url, "head")

    def test_restore_puts_a_row_back_only_when_asked_to_replace(self, db_url: str) -> None:
        migrate.downgrade(db_url, "0001")
        try:
            _run(db_url, _seed)
            migrate.upgrade(db_url, "head")
            archive_id = _run(
                db_url,
                lambda c: c.execute(
                    text("SELECT id FROM appointment_duplicates_archive WHERE original_id = 5")
                ).scalar_one(),
            )
            with pytest.raises(duplicates.RestoreError, match="holds booking uid uidB"):
                _run(db_url, lambda c: duplicates.restore(c, archive_id))
            assert _run(db_url, lambda c: duplicates.restore(c, archive_id, replace=True)) == 5
            state = _run(db_url, _state)
            assert state["kept"] == [1, 5, 6, 8]
            assert (4, 5, "uidB", "call_4") in state["archived"]
            # the restored row's archive copy is gone: it is an appointment again, not a duplicate
            originals = [a[0] for a in state["archived"]]
            assert 5 not in originals
            with pytest.raises(duplicates.RestoreError, match="no archived appointment"):
                _run(db_url, lambda c: duplicates.restore(c, archive_id))
        finally:
            migrate.upgrade(db_url, "head")
