"""Credentials per company: read from the tenants file, sealed with Fernet, stored in ``company_credentials``.

Why one sealed JSON blob per company rather than a column per secret: a secret never sits in a column
of its own, so no query, dump or admin view can select it in clear text by accident, and rotating the
key (``voicebook secrets rotate``) is one ``MultiFernet.rotate`` per row. The non-secret facts (base URL,
team id, OAuth client id, the connection state) stay in plain columns so they can be shown and queried.

The OAuth refresh token rotates: Cal.com hands out a new one with every access token. The sealed blob
keeps both the current one and the one the tenants file gave (``file_refresh_token``), so loading the
same file again keeps the rotated token instead of putting back one that no longer works, and a file
with a *new* refresh token (re-authorised by the operator) replaces it and reconnects the company.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.db.base import utc_now
from voicebook.db.models import Company, CompanyCredential, PhoneNumber
from voicebook.errors import TenantFileError, VoicebookError
from voicebook.logging import register_secret
from voicebook.memo import Memo

CONNECTED = "connected"
DISCONNECTED = "disconnected"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_FIELDS = ("api_key", "client_secret", "refresh_token", "webhook_secret", "retell_api_key")


class SecretKeyError(VoicebookError):
    """``VOICEBOOK_SECRET_KEY`` is missing, malformed or does not open a stored credential."""

    status_code = 500


# --- the tenants file's sections -------------------------------------------------------------------


class OAuthSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretStr
    refresh_token: SecretStr


class CalcomSpec(BaseModel):
    """A company's own Cal.com: ``api_key`` *or* ``oauth``; ``base_url`` e.g. ``https://api.cal.eu``."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$", max_length=255)
    api_key: SecretStr | None = None
    oauth: OAuthSpec | None = None
    webhook_secret: SecretStr | None = None
    team_id: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_credential(self) -> CalcomSpec:
        if self.api_key is not None and self.oauth is not None:
            raise ValueError("give either api_key or oauth, not both")
        return self


class RetellSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr


def has_secrets(calcom: CalcomSpec | None, retell: RetellSpec | None) -> bool:
    return retell is not None or (
        calcom is not None
        and (calcom.api_key is not None or calcom.oauth is not None or calcom.webhook_secret is not None)
    )


def substitute_env(raw: object, path: str, environ: dict[str, str] | None = None) -> object:
    """Replace ``${NAME}`` in every string of the raw file; a missing variable is one line naming it.

    Done on the raw YAML so that the error can name the file and entry (``companies[3] (nord-spa).calcom
    .api_key``) before validation; the values never appear in the message.
    """
    env = os.environ if environ is None else environ

    def walk(node: object, where: str) -> object:
        if isinstance(node, str):

            def value(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in env or not env[name]:
                    raise TenantFileError(f"{path}: {where}: environment variable {name} is not set")
                return env[name]

            return _ENV_REF.sub(value, node)
        if isinstance(node, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            out = []
            for i, item in enumerate(node):
                label = f"{where}[{i}]"
                if where == "companies" and isinstance(item, dict) and item.get("slug"):
                    label += f" ({item['slug']})"
                out.append(walk(item, label))
            return out
        return node

    return walk(raw, "")


# --- sealing ------------------------------------------------------------------------------------------


class Sealer:
    """Fernet over one or more keys (comma-separated): the first seals, all of them open."""

    def __init__(self, keys: Sequence[str]) -> None:
        from cryptography.fernet import Fernet, MultiFernet  # lazy: ~6 MB, only with VOICEBOOK_SECRET_KEY

        if not keys:
            raise SecretKeyError("VOICEBOOK_SECRET_KEY is empty")
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys]
        except (ValueError, TypeError):
            raise SecretKeyError(
                "VOICEBOOK_SECRET_KEY is not a Fernet key (url-safe base64 of 32 bytes; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from None
        self._multi = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"Sealer(keys={len(self._fernets)})"

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> Sealer | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return cls([k for k in value.get_secret_value().split(",") if k.strip()])

    def seal(self, data: dict[str, Any]) -> str:
        return self._multi.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def open(self, token: str, *, whose: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken  # lazy (see __init__); loaded by then

        try:
            opened: dict[str, Any] = json.loads(self._multi.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(
                f"the credentials of {whose} cannot be decrypted: VOICEBOOK_SECRET_KEY does not hold "
                "the key they were sealed with"
            ) from None
        return opened

    def rotate(self, token: str, *, whose: str) -> str:
        from cryptography.fernet import InvalidToken  # lazy (see __init__); loaded by then

        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"the credentials of {whose} cannot be decrypted: VOICEBOOK_SECRET_KEY does not hold "
                "the key they were sealed with"
            ) from None


# --- what the adapters read ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanySecrets:
    """One company's opened credentials; ``repr`` never shows a secret."""

    company_id: int
    slug: str
    base_url: str | None
    team_id: int | None
    auth: str  # "api_key" | "oauth" | "none"
    oauth_client_id: str | None
    state: str
    api_key: SecretStr | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    access_token: SecretStr | None = None
    access_expires_at: float | None = None
    webhook_secret: SecretStr | None = None
    retell_api_key: SecretStr | None = None

    @property
    def has_calcom(self) -> bool:
        return self.auth in ("api_key", "oauth")


def _secret(data: dict[str, Any], key: str) -> SecretStr | None:
    value = data.get(key)
    return SecretStr(value) if isinstance(value, str) and value else None


def open_row(row: CompanyCredential, slug: str, sealer: Sealer | None) -> CompanySecrets:
    data: dict[str, Any] = {}
    if row.sealed:
        if sealer is None:
            raise SecretKeyError(f"company {slug} has stored credentials but VOICEBOOK_SECRET_KEY is unset")
        data = sealer.open(row.sealed, whose=f"company {slug}")
    for key in (*SECRET_FIELDS, "access_token", "file_refresh_token"):
        value = data.get(key)
        register_secret(value if isinstance(value, str) else None)
    expires = data.get("access_expires_at")
    return CompanySecrets(
        company_id=row.company_id,
        slug=slug,
        base_url=row.calcom_base_url,
        team_id=row.calcom_team_id,
        auth=row.calcom_auth,
        oauth_client_id=row.oauth_client_id,
        state=row.state,
        api_key=_secret(data, "api_key"),
        client_secret=_secret(data, "client_secret"),
        refresh_token=_secret(data, "refresh_token"),
        access_token=_secret(data, "access_token"),
        access_expires_at=float(expires) if isinstance(expires, int | float) else None,
        webhook_secret=_secret(data, "webhook_secret"),
        retell_api_key=_secret(data, "retell_api_key"),
    )


async def _secrets_where(
    session: AsyncSession, condition: ColumnElement[bool], sealer: Sealer | None
) -> CompanySecrets | None:
    found = (
        await session.execute(
            select(CompanyCredential, Company.slug)
            .join(Company, Company.id == CompanyCredential.company_id)
            .where(condition)
        )
    ).first()
    return open_row(found[0], found[1], sealer) if found else None


async def secrets_of(session: AsyncSession, company_id: int, sealer: Sealer | None) -> CompanySecrets | None:
    return await _secrets_where(session, CompanyCredential.company_id == company_id, sealer)


async def secrets_by_slug(session: AsyncSession, slug: str, sealer: Sealer | None) -> CompanySecrets | None:
    return await _secrets_where(session, Company.slug == slug, sealer)


async def secrets_by_number(
    session: AsyncSession, number: str, sealer: Sealer | None
) -> CompanySecrets | None:
    owner = select(PhoneNumber.company_id).where(PhoneNumber.number == number)  # numbers are unique
    return await _secrets_where(session, Company.id.in_(owner.scalar_subquery()), sealer)


# Called numbers are read before the signature is checked (they pick the key), so anyone can make the
# cache look numbers up: it is bounded, and emptied when full (a miss only costs the query it saves).
MAX_REMEMBERED_NUMBERS = 50_000


class SecretsByNumber:
    """A few seconds' memory of the credentials of the company owning each called number.

    Every Retell function call is checked with the key of the company that owns ``call.to_number``;
    reading and opening that row on every request cost a connection, a query and a decryption. Like
    the offering cache and the calendar registry (same ``ttl_seconds``), a changed key is seen within
    that time. Only answers are kept: an unreadable key or a database error is raised every time.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sealer: Sealer | None,
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker, self._sealer = sessionmaker, sealer
        self._memo: Memo[str, CompanySecrets | None] = Memo(ttl_seconds, clock, MAX_REMEMBERED_NUMBERS)

    async def get(self, number: str) -> CompanySecrets | None:
        asked_at = self._memo.now()
        hit = self._memo.fresh(number)
        if hit is not None:
            return hit[0]
        async with self._sessionmaker() as session:
            found = await secrets_by_number(session, number, self._sealer)
        self._memo.keep(number, found, asked_at)
        return found


async def connection_states(session: AsyncSession) -> list[tuple[str, str, str | None, str]]:
    """(slug, state, base URL, auth kind) of every company with credentials: never a secret."""
    rows = await session.execute(
        select(
            Company.slug,
            CompanyCredential.state,
            CompanyCredential.calcom_base_url,
            CompanyCredential.calcom_auth,
        )
        .join(Company, Company.id == CompanyCredential.company_id)
        .order_by(Company.slug)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# --- writing ------------------------------------------------------------------------------------------


def _wanted(calcom: CalcomSpec | None, retell: RetellSpec | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if calcom is not None:
        if calcom.api_key is not None:
            data["api_key"] = calcom.api_key.get_secret_value()
        if calcom.oauth is not None:
            data["client_secret"] = calcom.oauth.client_secret.get_secret_value()
            data["file_refresh_token"] = calcom.oauth.refresh_token.get_secret_value()
        if calcom.webhook_secret is not None:
            data["webhook_secret"] = calcom.webhook_secret.get_secret_value()
    if retell is not None:
        data["retell_api_key"] = retell.api_key.get_secret_value()
    return data


@dataclass(frozen=True)
class CredentialEntry:
    slug: str
    calcom: CalcomSpec | None
    retell: RetellSpec | None


def require_sealer(entries: Iterable[CredentialEntry], sealer: Sealer | None, path: str) -> None:
    """Refuse a file with secrets when there is no key: a secret is never stored in clear text."""
    if sealer is not None:
        return
    for entry in entries:
        if has_secrets(entry.calcom, entry.retell):
            raise TenantFileError(
                f"{path}: companies ({entry.slug}): the file holds secrets but VOICEBOOK_SECRET_KEY is "
                "unset; they are stored encrypted only"
            )


async def store_credentials(
    session: AsyncSession,
    entries: Iterable[CredentialEntry],
    sealer: Sealer | None,
    *,
    path: str = "tenants file",
) -> int:
    """Upsert each company's credentials (after ``load_tenants``); returns how many rows changed.

    A company without a ``calcom``/``retell`` section loses stored credentials (the file is the truth,
    as for phone numbers). Unchanged secrets are not re-sealed, so loading the same file twice changes
    nothing; a changed credential reconnects a disconnected company.
    """
    entries = list(entries)
    require_sealer(entries, sealer, path)
    slugs = [e.slug for e in entries]
    ids: dict[str, int] = {}
    for chunk in range(0, len(slugs), 500):
        part = slugs[chunk : chunk + 500]
        found = await session.execute(select(Company.slug, Company.id).where(Company.slug.in_(part)))
        ids.update((row[0], row[1]) for row in found)
    rows: dict[int, CompanyCredential] = {}
    for chunk in range(0, len(slugs), 500):
        part_ids = [ids[s] for s in slugs[chunk : chunk + 500] if s in ids]
        rows.update(
            {
                r.company_id: r
                for r in (
                    await session.execute(
                        select(CompanyCredential).where(CompanyCredential.company_id.in_(part_ids))
                    )
                ).scalars()
            }
        )
    changed = 0
    now = utc_now()
    for entry in entries:
        company_id = ids[entry.slug]
        row = rows.get(company_id)
        calcom, retell = entry.calcom, entry.retell
        if calcom is None and retell is None:
            if row is not None:
                await session.delete(row)
                changed += 1
            continue
        wanted = _wanted(calcom, retell)
        plain = {
            "calcom_base_url": calcom.base_url.rstrip("/") if calcom and calcom.base_url else None,
            "calcom_team_id": calcom.team_id if calcom else None,
            "calcom_auth": "api_key"
            if calcom and calcom.api_key
            else "oauth"
            if calcom and calcom.oauth
            else "none",
            "oauth_client_id": calcom.oauth.client_id if calcom and calcom.oauth else None,
        }
        if row is None:
            if wanted.get("file_refresh_token"):
                wanted["refresh_token"] = wanted["file_refresh_token"]
            row = CompanyCredential(
                company_id=company_id,
                sealed=sealer.seal(wanted) if sealer and wanted else None,
                state=CONNECTED,
                state_changed_at=now,
                **plain,
            )
            session.add(row)
            changed += 1
            continue
        current = sealer.open(row.sealed, whose=f"company {entry.slug}") if sealer and row.sealed else {}
        merged = dict(wanted)
        if (
            wanted.get("file_refresh_token")
            and current.get("file_refresh_token") == wanted["file_refresh_token"]
        ):
            # Same file as before: keep the rotated refresh token and the live access token.
            for key in ("refresh_token", "access_token", "access_expires_at"):
                if key in current:
                    merged[key] = current[key]
        elif wanted.get("file_refresh_token"):
            merged["refresh_token"] = wanted["file_refresh_token"]
        secrets_changed = {k: current.get(k) for k in wanted} != wanted or set(current) - set(merged)
        plain_changed = any(getattr(row, k) != v for k, v in plain.items())
        if not secrets_changed and not plain_changed:
            continue
        for key, value in plain.items():
            setattr(row, key, value)
        if secrets_changed:
            row.sealed = sealer.seal(merged) if sealer and merged else None
            if row.state != CONNECTED:
                row.state, row.state_reason, row.state_changed_at = CONNECTED, None, now
        changed += 1
    await session.flush()
    return changed


async def save_tokens(
    session: AsyncSession,
    company_id: int,
    sealer: Sealer,
    *,
    slug: str,
    refresh_token: str,
    access_token: str,
    access_expires_at: float,
) -> None:
    """Store a rotated refresh token and its access token, sealed, in the caller's transaction."""
    row = await session.get(CompanyCredential, company_id)
    if row is None:
        return
    data = sealer.open(row.sealed, whose=f"company {slug}") if row.sealed else {}
    data.update(refresh_token=refresh_token, access_token=access_token, access_expires_at=access_expires_at)
    row.sealed = sealer.seal(data)
    await session.flush()


async def mark_state(session: AsyncSession, company_id: int, state: str, reason: str | None) -> bool:
    """Set the connection state; True when it changed (so the caller logs and alerts once)."""
    row = await session.get(CompanyCredential, company_id)
    if row is None or row.state == state:
        return False
    row.state, row.state_reason, row.state_changed_at = state, (reason or "")[:200] or None, utc_now()
    await session.flush()
    return True


async def rotate_all(session: AsyncSession, sealer: Sealer, progress: Any = None) -> int:
    """Re-seal every stored credential under the first key; ``progress(done, total)`` after each row."""
    rows = (
        await session.execute(
            select(CompanyCredential, Company.slug).join(Company, Company.id == CompanyCredential.company_id)
        )
    ).all()
    done = 0
    for row, slug in rows:
        if row.sealed:
            row.sealed = sealer.rotate(row.sealed, whose=f"company {slug}")
        done += 1
        if progress is not None:
            progress(done, len(rows))
    await session.flush()
    return done
