"""Migrations round-trip on every backend and match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

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
    assert migrate.current_heads() == ("0005",)


def test_heads_read_from_the_files_are_alembics() -> None:
    """``current_heads`` parses the version files instead of importing Alembic (a serving worker's
    memory); it must name exactly the heads Alembic itself finds, branches and merges included."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert set(migrate.current_heads()) == set(script.get_heads())
    assert {r.revision for r in script.walk_revisions()} == {
        migrate._revision_ids(path)[0] for path in (migrate.MIGRATIONS_DIR / "versions").glob("*.py")
    }


def test_heads_follow_branches_and_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    files = {
        "a.py": 'revision = "a"\ndown_revision = None\n',
        "b.py": 'revision: str = "b"\ndown_revision: str | None = "a"\n',
        "c.py": 'revision = "c"\ndown_revision = "a"\n',  # a branch: heads b and c
        "m.py": 'revision = "m"\ndown_revision = ("b", "c")\n',  # merged again
        "n.py": 'revision = "n"\ndown_revision = "m"\ndepends_on = "c"\n',
        "__init__.py": 'revision = "ignored"\ndown_revision = "n"\n',
    }
    for name, source in files.items():
        (versions / name).write_text(source)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    assert migrate.current_heads() == ("n",)
    (versions / "o.py").write_text('revision = "o"\ndown_revision = "m"\n')
    assert migrate.current_heads() == ("n", "o")

    from alembic.script import ScriptDirectory

    assert set(ScriptDirectory(str(tmp_path)).get_heads()) == {"n", "o"}  # the same rule as Alembic's


def _run(url: str, *statements: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                rows: list[tuple[object, ...]] = []
                for statement in statements:
                    result = await conn.execute(text(statement))
                    if result.returns_rows:
                        rows = [tuple(r) for r in result.all()]
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _service_columns(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: {col["name"] for col in inspect(c).get_columns("services")}
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_0003_gives_existing_services_the_default_window_and_downgrades(db_url: str) -> None:
    """Issue 13, case 8: a service row from before 0003 reads as 365 days ahead, no minimum notice."""
    migrate.downgrade(db_url, "0002")
    try:
        _run(
            db_url,
            "INSERT INTO companies (id, slug, name, timezone, email_domain, locale, country, created_at, "
            "updated_at) VALUES (1, 'salon', 'Salon', 'Europe/Berlin', 'salon.example', 'de', 'DE', "
            "'2026-11-30 10:00:00', '2026-11-30 10:00:00')",
            "INSERT INTO services (id, company_id, name, aliases, event_type_id, duration_minutes, "
            "round_robin, created_at, updated_at) VALUES (1, 1, 'Haarschnitt', '[]', 7, 30, false, "
            "'2026-11-30 10:00:00', '2026-11-30 10:00:00')",
        )
        migrate.upgrade(db_url, "0003")
        assert _run(db_url, "SELECT max_days_ahead, min_notice_minutes FROM services") == [(365, 0)]
        migrate.downgrade(db_url, "0002")
        assert _run(db_url, "SELECT name FROM services") == [("Haarschnitt",)]
        assert "max_days_ahead" not in _service_columns(db_url)
    finally:
        _run(db_url, "DELETE FROM services", "DELETE FROM companies")
        migrate.upgrade(db_url, "head")
