"""Drive the real app over HTTP the way Retell does, with Cal.com played by the sandbox in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.app import create_app
from voicebook.bootstrap import CalendarHandle, sandbox_gateway
from voicebook.calcom.sandbox import Sandbox, event_type_from_service
from voicebook.db.session import make_engine, make_sessionmaker, transaction
from voicebook.db.tenants import load_tenants, parse_tenants
from voicebook.retell.requests import function_call_body, signed
from voicebook.settings import Settings

RETELL_KEY = "key_test_0000000000000000"
CALCOM_SECRET = "whsec_test"
TENANTS = Path(__file__).parents[2] / "examples" / "tenants.yaml"
COMPANY_NUMBER = "+49301234567"
HAARSCHNITT, BERATUNG = 2563193, 2563194


@dataclass
class Env:
    client: httpx.AsyncClient
    sandbox: Sandbox
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    app: FastAPI

    async def call(
        self,
        function: str,
        args: dict[str, Any],
        *,
        call_id: str = "call_687",
        from_number: str = "+491701234567",
        to_number: str = COMPANY_NUMBER,
    ) -> httpx.Response:
        body = function_call_body(
            function, args, call_id=call_id, from_number=from_number, to_number=to_number
        )
        return await self.post_signed(f"/retell/functions/{function}", body)

    async def post_signed(self, path: str, body: dict[str, Any], key: str = RETELL_KEY) -> httpx.Response:
        raw, headers = signed(body, key)
        return await self.client.post(path, content=raw, headers=headers)


@asynccontextmanager
async def running_service(db_url: str, **overrides: Any) -> AsyncIterator[Env]:
    secrets = {"retell_api_key": SecretStr(RETELL_KEY), "calcom_webhook_secret": SecretStr(CALCOM_SECRET)}
    settings = Settings(
        database_url=db_url,
        _env_file=None,  # type: ignore[call-arg]
        **{**secrets, **overrides},
    )
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    spec = parse_tenants(TENANTS)
    async with transaction(sessionmaker) as session:
        await load_tenants(session, spec)
    sandbox = Sandbox(api_key="cal_sandbox_local", webhook_secret=CALCOM_SECRET)
    for company in spec.companies:
        for s in company.services:
            sandbox.add_event_type(
                event_type_from_service(
                    s.event_type_id, s.name, s.duration_minutes, s.round_robin, company.timezone
                )
            )
    gateway, http = sandbox_gateway(sandbox)
    app = create_app(settings, calendar=CalendarHandle(gateway, sandbox=sandbox))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://voicebook.test"
            ) as client,
        ):
            yield Env(client, sandbox, sessionmaker, settings, app)
    finally:
        await http.aclose()
        await engine.dispose()
