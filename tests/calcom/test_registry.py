"""The per-company client registry (issue 16): kept per credential, bounded, closed when idle, one refresh."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking.ports import CalendarGateway
from voicebook.calcom.registry import CalendarRegistry, CompanyGateway
from voicebook.calcom.sandbox import Sandbox, event_type_from_service
from voicebook.calcom.sandbox.accounts import AccountAccess, SandboxAccounts
from voicebook.db.credentials import CalcomSpec, CredentialEntry, OAuthSpec, Sealer, store_credentials
from voicebook.db.models import Company


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fallback:
    """Stands for the global gateway; any use of it in these tests is a failure."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the global gateway was used ({name})")


def _account(access: AccountAccess, accounts: SandboxAccounts, host: str) -> Sandbox:
    sandbox = Sandbox()
    sandbox.add_event_type(event_type_from_service(42, "s", 30, False, "Europe/Berlin"))
    return accounts.add(host, sandbox, access)


async def _companies(sm: async_sessionmaker[AsyncSession], sealer: Sealer) -> dict[str, int]:
    async with sm() as s, s.begin():
        ids = {}
        for slug in ("a", "b", "o"):
            company = Company(slug=slug, name=slug, timezone="UTC", email_domain=f"{slug}.example")
            s.add(company)
            await s.flush()
            ids[slug] = company.id
        await store_credentials(
            s,
            [
                CredentialEntry(
                    "a",
                    CalcomSpec(base_url="https://a.cal.test", api_key=SecretStr("cal_live_a_000000001")),
                    None,
                ),
                CredentialEntry(
                    "b",
                    CalcomSpec(base_url="https://b.cal.test", api_key=SecretStr("cal_live_b_000000002")),
                    None,
                ),
                CredentialEntry(
                    "o",
                    CalcomSpec(
                        base_url="https://o.cal.test",
                        oauth=OAuthSpec(
                            client_id="o-client",
                            client_secret=SecretStr("o-secret-1"),
                            refresh_token=SecretStr("o-rt-1"),
                        ),
                    ),
                    None,
                ),
            ],
            sealer,
        )
    return ids


def _window() -> tuple[datetime, datetime]:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


@pytest.mark.asyncio
async def test_clients_bounded_closed_when_idle_and_never_shared(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sealer = Sealer([Fernet.generate_key().decode()])
    ids = await _companies(sessionmaker, sealer)
    accounts = SandboxAccounts()
    a = _account(AccountAccess(api_key="cal_live_a_000000001"), accounts, "https://a.cal.test")
    b = _account(AccountAccess(api_key="cal_live_b_000000002"), accounts, "https://b.cal.test")
    clock = Clock()
    fallback: CalendarGateway = Fallback()  # type: ignore[assignment]
    registry = CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=sealer,
        fallback=fallback,
        default_base_url="https://api.cal.com",
        transport=accounts.transport,
        max_clients=1,
        idle_seconds=60,
        clock=clock,
    )
    try:
        assert await registry.for_company(None) is fallback
        gateway_a = await registry.for_company(ids["a"])
        assert isinstance(gateway_a, CompanyGateway)
        await gateway_a.find_slots(42, *_window())
        await (await registry.for_company(ids["b"])).find_slots(42, *_window())
        assert registry.open_clients == 1  # the least recently used (a) was closed
        assert a.tokens_seen == ["cal_live_a_000000001"]
        assert b.tokens_seen == ["cal_live_b_000000002"]
        clock.now += 3600
        await registry.for_company(ids["a"])  # the sweep closes b, idle for an hour
        assert registry.open_clients == 1
    finally:
        await registry.aclose()
    assert registry.open_clients == 0


@pytest.mark.asyncio
async def test_two_workers_refresh_a_rotating_token_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sealer = Sealer([Fernet.generate_key().decode()])
    ids = await _companies(sessionmaker, sealer)
    accounts = SandboxAccounts()
    access = AccountAccess(client_id="o-client", client_secret="o-secret-1", refresh_token="o-rt-1")
    _account(access, accounts, "https://o.cal.test")
    fallback: CalendarGateway = Fallback()  # type: ignore[assignment]
    workers = [
        CalendarRegistry(
            sessionmaker=sessionmaker,
            sealer=sealer,
            fallback=fallback,
            default_base_url="https://api.cal.com",
            transport=accounts.transport,
        )
        for _ in range(2)
    ]
    try:
        gateways = [await w.for_company(ids["o"]) for w in workers]
        results = await asyncio.gather(*(g.find_slots(42, *_window()) for g in gateways))
        assert all(results)
        assert access.refreshes == 1  # the second worker found the first one's fresh token
    finally:
        for w in workers:
            await w.aclose()


@pytest.mark.asyncio
async def test_token_is_refreshed_before_it_expires(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    import time

    from voicebook.calcom.oauth import REFRESH_MARGIN_SECONDS, TokenGrant

    sealer = Sealer([Fernet.generate_key().decode()])
    ids = await _companies(sessionmaker, sealer)
    accounts = SandboxAccounts()
    access = AccountAccess(client_id="o-client", client_secret="o-secret-1", refresh_token="o-rt-1")
    sandbox = _account(access, accounts, "https://o.cal.test")
    fallback: CalendarGateway = Fallback()  # type: ignore[assignment]
    registry = CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=sealer,
        fallback=fallback,
        default_base_url="https://api.cal.com",
        transport=accounts.transport,
    )
    try:
        gateway = await registry.for_company(ids["o"])
        await gateway.find_slots(42, *_window())
        assert access.refreshes == 1
        # The cached token still works for a minute, but that is inside the margin: refresh first.
        grant = registry._tokens[ids["o"]]
        registry._tokens[ids["o"]] = TokenGrant(grant.access_token, grant.refresh_token, time.time() + 60)
        async with sessionmaker() as s, s.begin():
            from voicebook.db.credentials import save_tokens

            await save_tokens(
                s,
                ids["o"],
                sealer,
                slug="o",
                refresh_token=access.refresh_token or "",
                access_token=grant.access_token.get_secret_value(),
                access_expires_at=time.time() + 60,
            )
        before = len(sandbox.tokens_seen)
        await gateway.find_slots(42, *_window())
        assert access.refreshes == 2
        assert len(sandbox.tokens_seen) == before + 1  # no request went out with the old token first
        assert REFRESH_MARGIN_SECONDS > 60
    finally:
        await registry.aclose()


@pytest.mark.asyncio
async def test_cal_coms_rate_headers_are_honoured_per_credential(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from voicebook.booking.errors import RateLimited
    from voicebook.calcom.budget import LocalBudget

    sealer = Sealer([Fernet.generate_key().decode()])
    ids = await _companies(sessionmaker, sealer)
    accounts = SandboxAccounts()
    # Account a allows only 3 requests a minute (a key with a custom limit); b the default.
    a = accounts.add(
        "https://a.cal.test",
        Sandbox(rate_limit=3, enforce_rate_limit=True),
        AccountAccess(api_key="cal_live_a_000000001"),
    )
    a.add_event_type(event_type_from_service(42, "s", 30, False, "Europe/Berlin"))
    b = _account(AccountAccess(api_key="cal_live_b_000000002"), accounts, "https://b.cal.test")
    fallback: CalendarGateway = Fallback()  # type: ignore[assignment]
    registry = CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=sealer,
        fallback=fallback,
        default_base_url="https://api.cal.com",
        transport=accounts.transport,
        budget=LocalBudget(),
    )
    try:
        gateway_a = await registry.for_company(ids["a"])
        for _ in range(3):
            await gateway_a.find_slots(42, *_window())
        with pytest.raises(RateLimited):  # Remaining-Default was 0: blocked until Reset, not sent
            await gateway_a.find_slots(42, *_window())
        assert len(a.tokens_seen) == 3
        await (await registry.for_company(ids["b"])).find_slots(42, *_window())
        assert len(b.tokens_seen) == 1
    finally:
        await registry.aclose()
