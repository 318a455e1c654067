"""Issue 16: two companies on two Cal.com accounts, end to end over HTTP, on all three databases.

Company ``acme`` books at ``https://acme.cal.test`` with an API key and signs its Retell calls with its
own Retell key; company ``nord`` books at ``https://api.cal.eu`` (Cal.com EU) over OAuth and uses the
global Retell key. Both accounts hold an event type with the *same id*, so a request sent to the wrong
account would succeed there — the tests check where each one landed, with which credential.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text

from voicebook.app import create_app
from voicebook.bootstrap import CalendarHandle, sandbox_gateway
from voicebook.calcom.sandbox import Sandbox, event_type_from_service
from voicebook.calcom.sandbox.accounts import AccountAccess, SandboxAccounts
from voicebook.calcom.sandbox.webhooks import SIGNATURE_HEADER, sign
from voicebook.db.base import Base
from voicebook.db.credentials import CredentialEntry, Sealer, secrets_by_slug, store_credentials
from voicebook.db.session import make_engine, make_sessionmaker, transaction
from voicebook.db.tenants import load_tenants, parse_tenants
from voicebook.retell.requests import function_call_body, signed
from voicebook.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
GLOBAL_RETELL = "key_global_retell_000000000"
ACME_RETELL = "key_acme_own_retell_11111111"
ACME_KEY = "cal_live_acme0000000000000000001"
ACME_HOOK = "whsec_acme_own_webhook_secret"
NORD_HOOK = "whsec_nord_own_webhook_secret"
NORD_CLIENT_SECRET = "nord-oauth-client-secret-xyz"
NORD_REFRESH = "nord-first-refresh-token-abc"
ADMIN = "admin-token-for-isolation-tests"
SECRETS = (ACME_RETELL, ACME_KEY, ACME_HOOK, NORD_HOOK, NORD_CLIENT_SECRET, NORD_REFRESH)
EVENT_TYPE = 5001
ACME_NUMBER, NORD_NUMBER = "+49301234567", "+49307654321"

TENANTS = f"""
companies:
  - slug: acme
    name: Acme Salon
    timezone: Europe/Berlin
    email_domain: acme.example
    phone_numbers: ["{ACME_NUMBER}"]
    services:
      - {{name: Haarschnitt, event_type_id: {EVENT_TYPE}, duration_minutes: 30}}
    calcom:
      base_url: https://acme.cal.test
      api_key: ${{ACME_KEY}}
      webhook_secret: ${{ACME_HOOK}}
    retell:
      api_key: ${{ACME_RETELL}}
  - slug: nord
    name: Nord Spa
    timezone: Europe/Berlin
    email_domain: nord.example
    phone_numbers: ["{NORD_NUMBER}"]
    services:
      - {{name: Massage, event_type_id: {EVENT_TYPE}, duration_minutes: 30}}
    calcom:
      base_url: https://api.cal.eu
      oauth: {{client_id: nord-client, client_secret: "${{NORD_SECRET}}", refresh_token: "${{NORD_REFRESH}}"}}
      webhook_secret: ${{NORD_HOOK}}
"""


def next_weekday_at(hour: int, days_ahead: int = 2) -> str:
    day = datetime.now(BERLIN) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


@dataclass
class Two:
    client: httpx.AsyncClient
    acme: Sandbox
    nord: Sandbox
    central: Sandbox
    acme_access: AccountAccess
    nord_access: AccountAccess
    settings: Settings
    sealer: Sealer
    db_url: str

    async def call(
        self, function: str, args: dict[str, Any], *, to: str, key: str, call_id: str
    ) -> httpx.Response:
        body = function_call_body(function, args, call_id=call_id, from_number="+491701234567", to_number=to)
        raw, headers = signed(body, key)
        return await self.client.post(f"/retell/functions/{function}", content=raw, headers=headers)


def _account(slug: str) -> Sandbox:
    sandbox = Sandbox()
    sandbox.add_event_type(event_type_from_service(EVENT_TYPE, slug, 30, False, "Europe/Berlin"))
    return sandbox


@asynccontextmanager
async def two_companies(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Two]:
    for name, value in {
        "ACME_KEY": ACME_KEY,
        "ACME_HOOK": ACME_HOOK,
        "ACME_RETELL": ACME_RETELL,
        "NORD_SECRET": NORD_CLIENT_SECRET,
        "NORD_REFRESH": NORD_REFRESH,
        "NORD_HOOK": NORD_HOOK,
    }.items():
        monkeypatch.setenv(name, value)
    key = Fernet.generate_key().decode()
    settings = Settings(
        database_url=db_url,
        retell_api_key=SecretStr(GLOBAL_RETELL),
        secret_key=SecretStr(key),
        admin_token=SecretStr(ADMIN),
        reconcile_interval_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    sealer = Sealer([key])
    path = tmp_path / "tenants.yaml"
    path.write_text(TENANTS, encoding="utf-8")
    spec = parse_tenants(path)
    engine = make_engine(db_url)
    async with transaction(make_sessionmaker(engine)) as session:
        await load_tenants(session, spec)
        entries = [CredentialEntry(c.slug, c.calcom, c.retell) for c in spec.companies]
        await store_credentials(session, entries, sealer)
    accounts = SandboxAccounts()
    acme_access = AccountAccess(api_key=ACME_KEY)
    nord_access = AccountAccess(
        client_id="nord-client", client_secret=NORD_CLIENT_SECRET, refresh_token=NORD_REFRESH
    )
    acme = accounts.add("https://acme.cal.test", _account("acme"), acme_access)
    nord = accounts.add("https://api.cal.eu", _account("nord"), nord_access)
    central = Sandbox(api_key="cal_sandbox_local")  # the global account: no event types at all
    gateway, http = sandbox_gateway(central)
    handle = CalendarHandle(gateway, sandbox=central, company_transport=accounts.transport)
    app = create_app(settings, calendar=handle)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vb.test") as client,
        ):
            yield Two(client, acme, nord, central, acme_access, nord_access, settings, sealer, db_url)
    finally:
        await http.aclose()
        await engine.dispose()


async def _table_dump(db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            parts = []
            for table in Base.metadata.sorted_tables:
                rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
                parts.append(f"{table.name}: {rows}")
            return "\n".join(parts)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
class TestTwoCompanies:
    async def test_each_booking_and_cancel_reaches_only_its_own_account(
        self,
        db_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            start = next_weekday_at(10)
            a = await env.call(
                "book_appointment",
                {"service": "Haarschnitt", "start": start, "name": "Anna Acme"},
                to=ACME_NUMBER,
                key=ACME_RETELL,
                call_id="call_acme_1",
            )
            assert a.json()["status"] == "booked", a.json()
            n = await env.call(
                "book_appointment",
                {"service": "Massage", "start": start, "name": "Nora Nord"},
                to=NORD_NUMBER,
                key=GLOBAL_RETELL,
                call_id="call_nord_1",
            )
            assert n.json()["status"] == "booked", n.json()
            assert [b.uid for b in env.acme.bookings] == [a.json()["appointment"]["calcom_booking_uid"]]
            assert [b.uid for b in env.nord.bookings] == [n.json()["appointment"]["calcom_booking_uid"]]
            assert env.central.bookings == []
            assert env.central.tokens_seen == []
            assert set(env.acme.tokens_seen) == {ACME_KEY}
            assert env.nord.tokens_seen
            assert all(t.startswith("sbx_at_") for t in env.nord.tokens_seen)
            assert env.nord_access.refreshes == 1

            cancel = await env.call(
                "cancel_appointment", {}, to=ACME_NUMBER, key=ACME_RETELL, call_id="call_acme_2"
            )
            assert cancel.json()["status"] == "cancelled", cancel.json()
            assert env.acme.bookings[0].status == "cancelled"
            assert env.nord.bookings[0].status != "cancelled"
            assert set(env.acme.tokens_seen) == {ACME_KEY}

            # The rotated refresh token is what the database holds now (sealed).
            engine = make_engine(env.db_url)
            try:
                async with make_sessionmaker(engine)() as session:
                    nord = await secrets_by_slug(session, "nord", env.sealer)
            finally:
                await engine.dispose()
            assert nord is not None
            assert nord.refresh_token == SecretStr(env.nord_access.refresh_token or "")
            assert nord.refresh_token != SecretStr(NORD_REFRESH)

            page = await env.client.get("/admin", headers={"Authorization": f"Bearer {ADMIN}"})
            assert page.status_code == 200
            assert "acme" in page.text
            assert "connected" in page.text
            dump = await _table_dump(env.db_url)
        shown = dump + page.text + capsys.readouterr().err + caplog.text
        for secret in (*SECRETS, env.nord_access.refresh_token or "-"):
            assert secret not in shown

    async def test_another_companys_retell_key_gets_401(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            args = {"service": "Haarschnitt", "date": next_weekday_at(9)[:10]}
            ok = await env.call("check_availability", args, to=ACME_NUMBER, key=ACME_RETELL, call_id="c1")
            assert ok.status_code == 200
            # acme has its own key: the global key no longer speaks for it.
            wrong = await env.call(
                "check_availability", args, to=ACME_NUMBER, key=GLOBAL_RETELL, call_id="c2"
            )
            assert wrong.status_code == 401
            # nord has none: the global key does, acme's does not.
            nord_args = {"service": "Massage", "date": args["date"]}
            ok = await env.call(
                "check_availability", nord_args, to=NORD_NUMBER, key=GLOBAL_RETELL, call_id="c3"
            )
            assert ok.status_code == 200
            wrong = await env.call(
                "check_availability", nord_args, to=NORD_NUMBER, key=ACME_RETELL, call_id="c4"
            )
            assert wrong.status_code == 401

    async def test_revoked_credential_disconnects_that_company_only(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            env.acme_access.revoke()
            start = next_weekday_at(11)
            a = await env.call(
                "book_appointment",
                {"service": "Haarschnitt", "start": start, "name": "Anna Acme"},
                to=ACME_NUMBER,
                key=ACME_RETELL,
                call_id="call_acme_r1",
            )
            body = a.json()
            assert body["status"] == "upstream_error"
            assert "nicht verbunden" in body["message"]
            metrics = (await env.client.get("/metrics")).text
            assert 'voicebook_company_disconnected{company="acme"} 1.0' in metrics
            page = await env.client.get("/admin", headers={"Authorization": f"Bearer {ADMIN}"})
            assert "disconnected" in page.text

            seen = len(env.acme.tokens_seen)
            again = await env.call(
                "check_availability",
                {"service": "Haarschnitt", "date": start[:10]},
                to=ACME_NUMBER,
                key=ACME_RETELL,
                call_id="call_acme_r2",
            )
            assert "nicht verbunden" in again.json()["message"]
            assert len(env.acme.tokens_seen) == seen  # nothing more was sent to the refused account

            n = await env.call(
                "book_appointment",
                {"service": "Massage", "start": start, "name": "Nora Nord"},
                to=NORD_NUMBER,
                key=GLOBAL_RETELL,
                call_id="call_nord_r1",
            )
            assert n.json()["status"] == "booked", n.json()
            metrics_after = (await env.client.get("/metrics")).text
            assert 'voicebook_company_disconnected{company="nord"} 1.0' not in metrics_after

    async def test_revoked_oauth_refresh_disconnects_and_expired_token_is_refreshed_once(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            args = {"service": "Massage", "date": next_weekday_at(9)[:10]}
            first = await env.call(
                "check_availability", args, to=NORD_NUMBER, key=GLOBAL_RETELL, call_id="o1"
            )
            assert first.json()["status"] == "available", first.json()
            env.nord_access.access_tokens.clear()  # Cal.com dropped the access token early: 401, refresh once
            second = await env.call(
                "check_availability", args, to=NORD_NUMBER, key=GLOBAL_RETELL, call_id="o2"
            )
            assert second.json()["status"] == "available", second.json()
            assert env.nord_access.refreshes == 2
            env.nord_access.revoke()
            third = await env.call(
                "check_availability", args, to=NORD_NUMBER, key=GLOBAL_RETELL, call_id="o3"
            )
            assert "nicht verbunden" in third.json()["message"]
            assert env.nord_access.refreshes == 2
            assert (
                'voicebook_company_disconnected{company="nord"} 1.0'
                in (await env.client.get("/metrics")).text
            )

    async def test_calcom_webhook_per_company_checks_its_own_secret(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            raw = b'{"triggerEvent":"PING","payload":{}}'
            good = await env.client.post(
                "/calcom/webhook/acme", content=raw, headers={SIGNATURE_HEADER: sign(raw, ACME_HOOK)}
            )
            assert good.status_code == 200
            crossed = await env.client.post(
                "/calcom/webhook/acme", content=raw, headers={SIGNATURE_HEADER: sign(raw, NORD_HOOK)}
            )
            assert crossed.status_code == 401
            unknown = await env.client.post(
                "/calcom/webhook/nobody", content=raw, headers={SIGNATURE_HEADER: sign(raw, ACME_HOOK)}
            )
            assert unknown.status_code == 401
            nord = await env.client.post(
                "/calcom/webhook/nord", content=raw, headers={SIGNATURE_HEADER: sign(raw, NORD_HOOK)}
            )
            assert nord.status_code == 200


@pytest.mark.asyncio
class TestTwoCompaniesBehindTheScenes:
    async def test_reconciler_and_webhooks_stay_with_each_company(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from voicebook.booking.reconcile.driver import reconcile_once
        from voicebook.bootstrap import booking_policy
        from voicebook.calcom.sandbox.render import webhook_body
        from voicebook.db.models import Appointment

        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            start = next_weekday_at(14)
            a = await env.call(
                "book_appointment",
                {"service": "Haarschnitt", "start": start, "name": "Anna Acme"},
                to=ACME_NUMBER,
                key=ACME_RETELL,
                call_id="call_acme_w1",
            )
            n = await env.call(
                "book_appointment",
                {"service": "Massage", "start": start, "name": "Nora Nord"},
                to=NORD_NUMBER,
                key=GLOBAL_RETELL,
                call_id="call_nord_w1",
            )
            assert a.json()["status"] == n.json()["status"] == "booked"
            acme_seen, nord_seen = len(env.acme.tokens_seen), len(env.nord.tokens_seen)

            # The reconciler compares each appointment with its own company's account.
            app_state = env.client._transport.app.state  # type: ignore[attr-defined]
            summary = await reconcile_once(
                app_state.sessionmaker,
                app_state.calendar,
                booking_policy(env.settings),
                owner="isolation",
                directory=app_state.directory,
                resync_after_seconds=0,  # compare the appointments just booked (they count as in step)
            )
            assert summary.failed == 0
            assert len(env.acme.tokens_seen) > acme_seen
            assert len(env.nord.tokens_seen) > nord_seen
            assert set(env.acme.tokens_seen) == {ACME_KEY}
            assert env.central.tokens_seen == []

            # A cancellation signed by nord about acme's booking changes nothing.
            stored = env.acme.bookings[0]
            event_type = env.acme.engine.event_type(stored.event_type_id)
            body = webhook_body("BOOKING_CANCELLED", stored, event_type, env.acme.clock.now())
            raw = json.dumps(body).encode()
            crossed = await env.client.post(
                "/calcom/webhook/nord", content=raw, headers={SIGNATURE_HEADER: sign(raw, NORD_HOOK)}
            )
            assert crossed.json()["status"] == "ignored"
            own = await env.client.post(
                "/calcom/webhook/acme", content=raw, headers={SIGNATURE_HEADER: sign(raw, ACME_HOOK)}
            )
            assert own.json()["status"] == "cancelled"
            engine = make_engine(env.db_url)
            try:
                async with make_sessionmaker(engine)() as session:
                    statuses = {
                        r[0]: r[1]
                        for r in await session.execute(
                            select(Appointment.calcom_booking_uid, Appointment.status)
                        )
                    }
            finally:
                await engine.dispose()
            assert statuses[stored.uid] == "cancelled"
            assert statuses[env.nord.bookings[0].uid] == "booked"

    async def test_used_up_budget_says_einen_moment_and_sends_nothing(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from voicebook import bootstrap
        from voicebook.calcom.budget import LocalBudget

        monkeypatch.setattr(
            bootstrap, "DatabaseBudget", lambda _sm, **_kw: LocalBudget(capacity=2, per_seconds=3600)
        )
        async with two_companies(db_url, tmp_path, monkeypatch) as env:
            args = {"service": "Haarschnitt", "date": next_weekday_at(9)[:10]}
            for i in range(2):
                ok = await env.call(
                    "check_availability", args, to=ACME_NUMBER, key=ACME_RETELL, call_id=f"b{i}"
                )
                assert ok.json()["status"] == "available", ok.json()
            busy = await env.call("check_availability", args, to=ACME_NUMBER, key=ACME_RETELL, call_id="b3")
            assert busy.json()["status"] == "upstream_error"
            assert "Einen Moment" in busy.json()["message"]
            assert len(env.acme.tokens_seen) == 2  # the third was never sent: no 429 could come back
            nord = {"service": "Massage", "date": args["date"]}
            other = await env.call(
                "check_availability", nord, to=NORD_NUMBER, key=GLOBAL_RETELL, call_id="b4"
            )
            assert other.json()["status"] == "available"  # another credential, another budget
