"""Credentials per company (issue 16): ${NAME} from the environment, sealed at rest, rotation, no leaks."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.db.credentials import (
    DISCONNECTED,
    CredentialEntry,
    Sealer,
    SecretKeyError,
    SecretsByNumber,
    mark_state,
    require_sealer,
    rotate_all,
    secrets_by_number,
    secrets_by_slug,
    store_credentials,
)
from voicebook.db.models import CompanyCredential
from voicebook.db.tenants import load_tenants, parse_tenants
from voicebook.errors import TenantFileError
from voicebook.logging import configure_logging

API_KEY = "cal_live_nordspa0123456789abcdef"
WEBHOOK = "whsec-nord-spa-very-secret"
RETELL = "key_nordspa_retell_0123456789"
CLIENT_SECRET = "oauth-client-secret-suedbad-42"
REFRESH = "refresh-token-suedbad-first-1"

FILE = """
companies:
  - slug: nord-spa
    name: Nord Spa
    timezone: Europe/Berlin
    email_domain: nord-spa.example
    phone_numbers: ["+49301234567"]
    calcom:
      base_url: https://api.cal.eu/
      api_key: ${NORD_KEY}
      webhook_secret: ${NORD_HOOK}
      team_id: 77
    retell:
      api_key: ${NORD_RETELL}
  - slug: sued-bad
    name: Sued Bad
    timezone: Europe/Berlin
    email_domain: sued-bad.example
    phone_numbers: ["+49307654321"]
    calcom:
      oauth: {client_id: client-sued, client_secret: "${SUED_SECRET}", refresh_token: "${SUED_REFRESH}"}
  - slug: plain
    name: Plain
    timezone: Europe/Berlin
    email_domain: plain.example
    phone_numbers: ["+49301112223"]
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "NORD_KEY": API_KEY,
        "NORD_HOOK": WEBHOOK,
        "NORD_RETELL": RETELL,
        "SUED_SECRET": CLIENT_SECRET,
        "SUED_REFRESH": REFRESH,
    }.items():
        monkeypatch.setenv(name, value)


def _file(tmp_path: Path, body: str = FILE) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(body, encoding="utf-8")
    return path


async def _load(sm: async_sessionmaker[AsyncSession], path: Path, sealer: Sealer | None) -> int:
    spec = parse_tenants(path)
    entries = [CredentialEntry(c.slug, c.calcom, c.retell) for c in spec.companies]
    async with sm() as s, s.begin():
        summary = await load_tenants(s, spec)
        return summary.changed + await store_credentials(s, entries, sealer, path=str(path))


def test_missing_variable_is_one_line_naming_file_entry_and_variable(tmp_path: Path, env: None) -> None:
    path = _file(tmp_path, FILE.replace("${NORD_HOOK}", "${NORD_HOOK_MISSING}"))
    with pytest.raises(TenantFileError) as caught:
        parse_tenants(path)
    message = caught.value.message
    assert "\n" not in message
    assert str(path) in message
    assert "companies[0] (nord-spa).calcom.webhook_secret" in message
    assert "NORD_HOOK_MISSING" in message


def test_secrets_never_in_repr_or_dump(tmp_path: Path, env: None) -> None:
    spec = parse_tenants(_file(tmp_path))
    shown = repr(spec) + str(spec) + str(spec.model_dump())
    for secret in (API_KEY, WEBHOOK, RETELL, CLIENT_SECRET, REFRESH):
        assert secret not in shown
    assert spec.companies[0].calcom is not None
    assert spec.companies[0].calcom.api_key == SecretStr(API_KEY)


def test_file_with_secrets_and_no_key_is_refused(tmp_path: Path, env: None) -> None:
    spec = parse_tenants(_file(tmp_path))
    entries = [CredentialEntry(c.slug, c.calcom, c.retell) for c in spec.companies]
    with pytest.raises(TenantFileError, match="VOICEBOOK_SECRET_KEY is unset"):
        require_sealer(entries, None, "tenants.yaml")


def test_malformed_key_is_one_clear_line() -> None:
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        Sealer(["not-a-key"])


@pytest.mark.asyncio
async def test_stored_sealed_opened_idempotent_and_rotated(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path, env: None
) -> None:
    old = Fernet.generate_key().decode()
    path = _file(tmp_path)
    assert await _load(sessionmaker, path, Sealer([old])) > 0
    assert await _load(sessionmaker, path, Sealer([old])) == 0  # same file twice: nothing changes

    async with sessionmaker() as s:
        dump = " ".join(
            str(row) for row in (await s.execute(text("SELECT * FROM company_credentials"))).all()
        )
        for secret in (API_KEY, WEBHOOK, RETELL, CLIENT_SECRET, REFRESH):
            assert secret not in dump
        nord = await secrets_by_slug(s, "nord-spa", Sealer([old]))
        sued = await secrets_by_number(s, "+49307654321", Sealer([old]))
        assert await secrets_by_slug(s, "plain", Sealer([old])) is None
    assert nord is not None
    assert sued is not None
    assert nord.base_url == "https://api.cal.eu"
    assert nord.team_id == 77
    assert nord.auth == "api_key"
    assert nord.api_key == SecretStr(API_KEY)
    assert nord.retell_api_key == SecretStr(RETELL)
    assert nord.webhook_secret == SecretStr(WEBHOOK)
    assert sued.auth == "oauth"
    assert sued.oauth_client_id == "client-sued"
    assert sued.refresh_token == SecretStr(REFRESH)
    for secret in (API_KEY, WEBHOOK, RETELL):
        assert secret not in repr(nord)

    new = Fernet.generate_key().decode()
    async with sessionmaker() as s, s.begin():
        assert await rotate_all(s, Sealer([new, old])) == 2
    async with sessionmaker() as s:
        rotated = await secrets_by_slug(s, "nord-spa", Sealer([new]))  # the old key is no longer needed
        assert rotated is not None
        assert rotated.api_key == SecretStr(API_KEY)
        with pytest.raises(SecretKeyError, match="nord-spa"):
            await secrets_by_slug(s, "nord-spa", Sealer([old]))


@pytest.mark.asyncio
async def test_reload_keeps_rotated_refresh_token_and_new_credential_reconnects(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicebook.db.credentials import save_tokens

    sealer = Sealer([Fernet.generate_key().decode()])
    path = _file(tmp_path)
    await _load(sessionmaker, path, sealer)
    async with sessionmaker() as s, s.begin():
        sued = await secrets_by_slug(s, "sued-bad", sealer)
        assert sued is not None
        await save_tokens(
            s,
            sued.company_id,
            sealer,
            slug="sued-bad",
            refresh_token="rotated-2",
            access_token="acc-2",
            access_expires_at=1e12,
        )
        nord = await secrets_by_slug(s, "nord-spa", sealer)
        assert nord is not None
        await mark_state(s, nord.company_id, DISCONNECTED, "401 Invalid API Key")
    assert await _load(sessionmaker, path, sealer) == 0
    async with sessionmaker() as s:
        sued = await secrets_by_slug(s, "sued-bad", sealer)
        nord = await secrets_by_slug(s, "nord-spa", sealer)
    assert sued is not None
    assert sued.refresh_token == SecretStr("rotated-2")
    assert nord is not None
    assert nord.state == DISCONNECTED
    monkeypatch.setenv("NORD_KEY", "cal_live_nordspa_new_key_99")
    assert await _load(sessionmaker, path, sealer) == 1
    async with sessionmaker() as s:
        nord = await secrets_by_slug(s, "nord-spa", sealer)
        state = (await s.execute(select(CompanyCredential.state))).scalars().all()
    assert nord is not None
    assert nord.state == "connected"
    assert set(state) == {"connected"}


@pytest.mark.asyncio
async def test_opened_secrets_are_redacted_from_logs(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path, env: None
) -> None:
    sealer = Sealer([Fernet.generate_key().decode()])
    await _load(
        sessionmaker, _file(tmp_path, FILE.replace("${NORD_HOOK}", "plainwebhooksecretvalue")), sealer
    )
    async with sessionmaker() as s:
        await secrets_by_slug(s, "nord-spa", sealer)
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    logging.getLogger("voicebook.test").warning("upstream said plainwebhooksecretvalue in its error")
    assert "plainwebhooksecretvalue" not in out.getvalue()
    assert "[redacted]" in out.getvalue()


@pytest.mark.asyncio
async def test_number_secrets_are_remembered_for_their_ttl_only(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path, env: None
) -> None:
    """The Retell check reads the owner's key once per ``ttl``; a changed key is seen after it."""
    key = Fernet.generate_key().decode()
    path = _file(tmp_path)
    await _load(sessionmaker, path, Sealer([key]))
    now = [0.0]
    cache = SecretsByNumber(sessionmaker, Sealer([key]), ttl_seconds=10.0, clock=lambda: now[0])
    first = await cache.get("+49301234567")
    assert first is not None
    assert first.retell_api_key == SecretStr(RETELL)
    assert await cache.get("+49301112223") is None  # a company without its own keys: kept too

    rotated = "key_nordspa_retell_rotated_99"
    path.write_text(FILE.replace("${NORD_RETELL}", rotated), encoding="utf-8")
    await _load(sessionmaker, path, Sealer([key]))
    now[0] = 9.9
    kept = await cache.get("+49301234567")
    assert kept is not None
    assert kept.retell_api_key == SecretStr(RETELL)  # within the ttl: no query
    now[0] = 10.1
    fresh = await cache.get("+49301234567")
    assert fresh is not None
    assert fresh.retell_api_key == SecretStr(rotated)  # after it: the new key

    wrong = SecretsByNumber(sessionmaker, Sealer([Fernet.generate_key().decode()]), clock=lambda: now[0])
    for _ in range(2):  # an unreadable key is raised every time, never remembered as "no key"
        with pytest.raises(SecretKeyError):
            await wrong.get("+49301234567")
