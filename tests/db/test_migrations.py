"""Migrations round-trip on every backend and match the models."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from voicebook.db import migrate
from voicebook.db.base import Base
from voicebook.db.session import make_engine


def _inspect(url: str) -> tuple[set[str], list[object], dict[str, bool]]:
    async def run() -> tuple[set[str], list[object], dict[str, bool]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:

                def sync(c):  # type: ignore[no-untyped-def]
                    insp = inspect(c)
                    diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
                    names = set(insp.get_table_names())
                    idx = {}
                    if "appointments" in names:
                        idx = {i["name"]: bool(i["unique"]) for i in insp.get_indexes("appointments")}
                    return set(insp.get_table_names()), diff, idx

                return await conn.run_sync(sync)
        finally:
            await engine.dispose()

    return asyncio.run(run())


class TestMigrations:
    def test_upgrade_downgrade_upgrade_round_trips(self, db_url: str) -> None:
        migrate.downgrade(db_url, "base")
        tables, _, _ = _inspect(db_url)
        assert not tables & set(Base.metadata.tables)
        migrate.upgrade(db_url, "head")
        tables, diff, indexes = _inspect(db_url)
        assert set(Base.metadata.tables) <= tables
        assert diff == []
        assert indexes.get("uq_appointment_calcom_booking_uid") is True

    def test_first_revision_has_plain_index_only(self, db_url: str) -> None:
        migrate.downgrade(db_url, "0001")
        try:
            _, _, indexes = _inspect(db_url)
            assert indexes.get("ix_appointments_calcom_booking_uid") is False
            assert "uq_appointment_calcom_booking_uid" not in indexes
        finally:
            migrate.upgrade(db_url, "head")


@pytest.mark.parametrize("revision", ["head"])
def test_single_head(revision: str) -> None:
    assert migrate.current_heads() == ("0002",)
