"""The rate budget per credential (issue 16): shared by workers, honours Cal.com's headers, never a 429."""

from __future__ import annotations

import asyncio
import math
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.calcom.budget_support import Clock, redis_stores

from voicebook.booking.errors import RateLimited
from voicebook.calcom.budget import (
    BudgetedTransport,
    DatabaseBudget,
    LeasedBudget,
    LocalBudget,
    RedisBudget,
    budget_key,
)


def test_budget_key_never_holds_the_credential() -> None:
    key = budget_key("https://api.cal.eu", "cal_live_secret_value_123")
    assert "cal_live" not in key
    assert len(key) <= 64
    assert key == budget_key("https://api.cal.eu", "cal_live_secret_value_123")
    assert key != budget_key("https://api.cal.com", "cal_live_secret_value_123")


@pytest.mark.asyncio
async def test_local_bucket_refills_and_blocks() -> None:
    clock = Clock()
    budget = LocalBudget(capacity=3, per_seconds=60, clock=clock)
    assert [await budget.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await budget.take("k") == pytest.approx(20.0)  # reserved: the 4th goes in 20 s
    clock.now += 60
    assert await budget.take("k") == 0.0
    await budget.block("k", 30)
    assert await budget.take("k") == pytest.approx(30.0)
    assert await budget.take("other") == 0.0  # another credential has its own bucket


@pytest.mark.asyncio
async def test_database_bucket_is_shared_by_two_workers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    worker_a = DatabaseBudget(sessionmaker, capacity=3, per_seconds=60, clock=clock)
    worker_b = DatabaseBudget(sessionmaker, capacity=3, per_seconds=60, clock=clock)
    assert await worker_a.take("cred") == 0.0
    assert await worker_a.take("cred") == 0.0
    assert await worker_b.take("cred") == 0.0
    assert await worker_b.take("cred") == pytest.approx(20.0)
    assert await worker_a.take("cred") == pytest.approx(40.0)
    clock.now += 120
    assert await worker_b.take("cred") == 0.0
    await worker_a.block("cred", 15)
    assert await worker_b.take("cred") == pytest.approx(15.0)
    # Concurrent takes never hand out more than the capacity at once.
    clock.now += 120
    waits = await asyncio.gather(*(worker_a.take("burst") for _ in range(5)))
    assert sorted(w == 0.0 for w in waits).count(True) == 3


@pytest.mark.asyncio
async def test_redis_bucket_when_configured() -> None:
    clock = Clock()
    async with redis_stores([clock], capacity=2, per_seconds=60) as (budget,):
        key = f"test-{uuid.uuid4().hex}"
        assert await budget.take(key) == 0.0
        assert await budget.take(key) == 0.0
        assert await budget.take(key) == pytest.approx(30.0)
        clock.now += 60
        await budget.block(key, 10)
        assert await budget.take(key) == pytest.approx(10.0)


@pytest.mark.asyncio
async def test_transport_waits_briefly_refuses_long_waits_and_honours_429() -> None:
    clock = Clock()
    budget = LocalBudget(capacity=1, per_seconds=1, clock=clock)  # one request a second
    sent: list[httpx.Request] = []
    slept: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 2:
            return httpx.Response(429, headers={"X-RateLimit-Reset-Default": "50"}, json={})
        return httpx.Response(200, json={})

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    transport = BudgetedTransport(httpx.MockTransport(answer), budget, "k", max_wait_seconds=2.0, sleep=sleep)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.cal.com") as http:
        assert (await http.get("/v2/slots")).status_code == 200
        assert (
            await http.get("/v2/slots")
        ).status_code == 429  # waited 1 s for its token, then Cal.com said no
        assert slept == [pytest.approx(1.0)]
        with pytest.raises(RateLimited):  # blocked for 50 s: not sent at all, the caller hears it now
            await http.get("/v2/slots")
    assert len(sent) == 2


@pytest.mark.asyncio
async def test_a_budget_store_that_is_down_never_fails_the_request() -> None:
    class Down:
        async def take(self, key: str, max_wait: float = math.inf) -> float:
            raise OSError("redis down")

        async def block(self, key: str, seconds: float) -> None:
            raise OSError("redis down")

    transport = BudgetedTransport(httpx.MockTransport(lambda r: httpx.Response(429, json={})), Down(), "k")
    async with httpx.AsyncClient(transport=transport, base_url="https://api.cal.com") as http:
        assert (await http.get("/v2/slots")).status_code == 429  # Cal.com's answer, unchanged


@pytest.mark.asyncio
@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/0"], ids=["database", "redis"])
async def test_the_rate_limit_setting_sizes_every_budget_store(redis_url: str | None) -> None:
    from voicebook.bootstrap import rate_budget
    from voicebook.db.session import make_engine, make_sessionmaker
    from voicebook.settings import Settings

    engine = make_engine("sqlite:///:memory:")
    try:
        default = rate_budget(Settings(redis_url=redis_url), make_sessionmaker(engine))
        raised = rate_budget(
            Settings(redis_url=redis_url, calcom_rate_limit_per_minute=600), make_sessionmaker(engine)
        )
        for budget, capacity in ((default, 120), (raised, 600)):
            assert isinstance(budget, LeasedBudget)  # this worker leases from the shared store
            store = budget.store
            assert type(store) is (RedisBudget if redis_url else DatabaseBudget)
            assert isinstance(store, RedisBudget | DatabaseBudget)
            assert store.capacity == capacity
            assert store.rate == pytest.approx(capacity / 60)  # refilled over a minute
            await budget.aclose()
    finally:
        await engine.dispose()


def test_the_rate_limit_setting_defaults_to_cal_coms_and_refuses_below_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from voicebook.settings import Settings

    monkeypatch.delenv("VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE", raising=False)
    assert Settings().calcom_rate_limit_per_minute == 120
    monkeypatch.setenv("VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE", "800")
    assert Settings().calcom_rate_limit_per_minute == 800
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE", bad)
        with pytest.raises(ValidationError):
            Settings()


def test_budget_key_names_the_api_root_as_the_client_reaches_it() -> None:
    secret = "cal_live_secret_value_123"
    same = {
        budget_key(url, secret)
        for url in (
            "https://api.cal.com",
            "https://api.cal.com/",
            "https://api.cal.com/v2",
            "HTTPS://API.Cal.com/v2/",
        )
    }
    assert len(same) == 1
    assert budget_key("https://api.cal.com", "cal_live_other_value_456") not in same
    assert budget_key("https://cal.example/api", secret) != budget_key("https://cal.example", secret)


@pytest.mark.asyncio
async def test_one_api_key_as_global_and_company_key_draws_from_one_bucket(
    sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cal.com limits the key, not how we reach it: the global gateway and a company's gateway over the
    same key and API root take their tokens from one bucket, so together they stay within its limit."""
    from datetime import UTC, datetime, timedelta

    from cryptography.fernet import Fernet
    from pydantic import SecretStr

    from voicebook import bootstrap
    from voicebook.calcom.sandbox import Sandbox, event_type_from_service
    from voicebook.calcom.sandbox.accounts import AccountAccess, SandboxAccounts
    from voicebook.db.credentials import CalcomSpec, CredentialEntry, Sealer, store_credentials
    from voicebook.db.models import Company
    from voicebook.settings import Settings

    api_key = "cal_live_shared_0000001"
    clock = Clock()
    shared = LocalBudget(capacity=120, per_seconds=60, clock=clock)
    stores: list[LocalBudget] = []
    monkeypatch.setattr(bootstrap, "DatabaseBudget", lambda _sm, **_kw: stores.append(shared) or shared)
    accounts = SandboxAccounts()
    account = accounts.add("https://api.cal.com", Sandbox(), AccountAccess(api_key=api_key))
    account.add_event_type(event_type_from_service(42, "s", 30, False, "UTC"))
    monkeypatch.setattr(bootstrap.httpx, "AsyncHTTPTransport", lambda *_a, **_kw: accounts.transport)

    secret = Fernet.generate_key().decode()
    async with sessionmaker() as session, session.begin():
        company = Company(slug="same", name="same", timezone="UTC", email_domain="same.example")
        session.add(company)
        await session.flush()
        company_id = company.id
        spec = CalcomSpec(base_url="https://api.cal.com", api_key=SecretStr(api_key))
        await store_credentials(session, [CredentialEntry("same", spec, None)], Sealer([secret]))
    settings = Settings(
        calcom_api_key=SecretStr(api_key),
        calcom_base_url="https://api.cal.com/v2/",  # written another way: the same API root
        secret_key=SecretStr(secret),
        redis_url=None,
    )
    handle = await bootstrap.open_calendar(settings, sessionmaker)
    handle.company_transport = accounts.transport
    registry = bootstrap.company_calendars(settings, sessionmaker, handle)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        company_gateway = await registry.for_company(company_id)
        assert company_gateway is not handle.gateway  # the company's own client and transport
        await handle.gateway.find_slots(42, start, start + timedelta(days=1))
        await company_gateway.find_slots(42, start, start + timedelta(days=1))
    finally:
        await registry.aclose()
        await handle.aclose()
    assert account.tokens_seen == [api_key, api_key]
    assert len(stores) == 1  # one budget per worker: the registry shares the global gateway's leases
    assert len(shared._buckets) == 1  # one credential, one bucket
    [(tokens, _, _)] = shared._buckets.values()
    # Both requests' tokens came out of it; the worker's second lease may hold one spare token (a lease
    # grows while leases run out), never more.
    assert 120 - 3 <= tokens <= 120 - 2
