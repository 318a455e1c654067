"""The built-in sandbox behaves like one Cal.com when voicebook runs without a Cal.com key.

The app is started the way ``voicebook serve`` starts it (its own lifespan opens the sandbox), on a
migrated SQLite file: bookings survive a restart, the control API is reachable when enabled, and a
company loaded while the server runs can book at once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from voicebook.app import create_app
from voicebook.cli.server import remember_sandbox_bookings
from voicebook.db import migrate
from voicebook.db.session import make_engine, make_sessionmaker, transaction
from voicebook.db.tenants import load_tenants, parse_tenants
from voicebook.retell.requests import function_call_body, signed
from voicebook.settings import Settings

KEY = "key_test_0000000000000000"
EXAMPLE = Path(__file__).parents[1] / "examples" / "tenants.yaml"
SALON = "+49301234567"


def next_weekday() -> date:
    """A Monday to Friday at least two days ahead: open in the sandbox's Mon–Sat 08–18 hours."""
    day = datetime.now(ZoneInfo("Europe/Berlin")).date() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'voicebook.db'}",
        retell_api_key=SecretStr(KEY),
        reconcile_interval_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
        **overrides,
    )


async def load(settings: Settings, path: Path) -> None:
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            await load_tenants(session, parse_tenants(path))
    finally:
        await engine.dispose()


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own calendar, as ``voicebook serve`` runs it (no injected sandbox)."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://voicebook.test") as client,
    ):
        yield client


async def call(
    client: httpx.AsyncClient, function: str, args: dict[str, str], *, call_id: str, to: str = SALON
) -> dict[str, Any]:
    body = function_call_body(function, args, call_id=call_id, from_number="+491701234567", to_number=to)
    raw, headers = signed(body, KEY)
    response = await client.post(f"/retell/functions/{function}", content=raw, headers=headers)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


@pytest_asyncio.fixture
async def migrated(tmp_path: Path) -> Path:
    await migrate.upgrade_async(f"sqlite:///{tmp_path / 'voicebook.db'}")
    await load(settings_for(tmp_path), EXAMPLE)
    return tmp_path


def test_serve_keeps_the_sandbox_beside_the_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if "SANDBOX" not in k})
    state = remember_sandbox_bookings(settings_for(tmp_path))
    assert state == tmp_path / "voicebook.sandbox.json"
    assert Settings(_env_file=None).sandbox_state_file == state  # type: ignore[call-arg]
    chosen = tmp_path / "elsewhere.json"
    assert remember_sandbox_bookings(settings_for(tmp_path, sandbox_state_file=chosen)) == chosen
    del os.environ["VOICEBOOK_SANDBOX_STATE_FILE"]
    remote = Settings(database_url="postgresql://u@db/x", _env_file=None)  # type: ignore[call-arg]
    assert remember_sandbox_bookings(remote) is None


@pytest.mark.asyncio
async def test_a_booked_slot_stays_booked_across_a_restart(migrated: Path) -> None:
    settings = settings_for(migrated, sandbox_state_file=migrated / "voicebook.sandbox.json")
    start = f"{next_weekday().isoformat()}T10:00"
    async with serving(settings) as client:
        first = await call(
            client,
            "book_appointment",
            {"service": "Haarschnitt", "start": start, "name": "Jörg Müller"},
            call_id="call_before_restart",
        )
        assert first["status"] == "booked", first
    async with serving(settings) as client:
        second = await call(
            client,
            "book_appointment",
            {"service": "Haarschnitt", "start": start, "name": "Anna Schmidt"},
            call_id="call_after_restart",
        )
        assert second["status"] == "slot_unavailable", second
        cancelled = await call(
            client, "cancel_appointment", {"start": start}, call_id="call_cancel_after_restart"
        )
        assert cancelled["status"] == "cancelled", cancelled


@pytest.mark.asyncio
@pytest.mark.parametrize("enabled", [True, False])
async def test_the_control_api_is_reachable_when_enabled(migrated: Path, enabled: bool) -> None:
    async with serving(settings_for(migrated, sandbox_control_enabled=enabled)) as client:
        response = await client.get("/_sandbox/faults")
        assert response.status_code == (200 if enabled else 404)
        if enabled:
            assert response.json() == {"data": []}
            added = await client.post(
                "/_sandbox/faults", json={"kind": "http_error", "endpoint": "slots.get", "status": 503}
            )
            assert added.status_code == 200, added.text
            assert len(added.json()["data"]) == 1


@pytest.mark.asyncio
async def test_a_company_loaded_while_running_can_book(migrated: Path) -> None:
    settings = settings_for(migrated)
    newcomer = migrated / "newcomer.yaml"
    newcomer.write_text(
        EXAMPLE.read_text()
        .replace("salon-mitte", "salon-nord")
        .replace("Salon Mitte", "Salon Nord")
        .replace("+49301234567", "+49401234567")
        .replace("2563193", "7000001")
        .replace("2563194", "7000002")
    )
    start = f"{next_weekday().isoformat()}T11:00"
    async with serving(settings) as client:
        await load(settings, newcomer)
        answer = await call(
            client,
            "book_appointment",
            {"service": "Haarschnitt", "start": start, "name": "Jörg Müller"},
            call_id="call_newcomer",
            to="+49401234567",
        )
        assert answer["status"] == "booked", answer


@pytest.mark.asyncio
async def test_check_availability_on_a_sunday_says_closed_and_offers_monday(migrated: Path) -> None:
    sunday = next_weekday() + timedelta(days=7)
    sunday += timedelta(days=6 - sunday.weekday())
    async with serving(settings_for(migrated)) as client:
        answer = await call(
            client,
            "check_availability",
            {"service": "Haarschnitt", "date": sunday.isoformat()},
            call_id="call_sunday",
        )
    assert answer["status"] == "slot_unavailable"
    assert answer["message"].startswith("Sonntags haben wir geschlossen. Ich kann Ihnen Montag,")
    monday = (sunday + timedelta(days=1)).isoformat()
    assert all(a.startswith(monday) for a in answer["alternatives"]), answer
