"""Load companies, phone numbers and services from the tenants YAML (examples/tenants.yaml), idempotently.

The whole file is validated before anything is written, and written in the caller's one transaction,
so a broken file leaves the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.credentials import CalcomSpec, RetellSpec, substitute_env
from voicebook.db.models import Company, PhoneNumber, Service
from voicebook.errors import TenantFileError


class ServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list)
    event_type_id: int = Field(gt=0)
    duration_minutes: int = Field(gt=0, le=24 * 60)
    round_robin: bool = False
    # The booking window (booking/window.py, whose DEFAULT_* and MAX_DAYS_AHEAD_LIMIT these repeat: db
    # sits below booking; a test keeps them equal). Days count in the company's zone; 0 minutes' notice
    # refuses only the past and leaves short notice to the event type's own minimum in Cal.com.
    max_days_ahead: int = Field(default=365, ge=1, le=3650)
    min_notice_minutes: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _window_not_empty(self) -> ServiceSpec:
        if self.min_notice_minutes >= self.max_days_ahead * 24 * 60:
            raise ValueError(
                f"min_notice_minutes ({self.min_notice_minutes}) must be shorter than "
                f"max_days_ahead ({self.max_days_ahead} days)"
            )
        return self


class CompanySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=200)
    timezone: str
    email_domain: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
    locale: str = Field(default="de", pattern=r"^(de|en)$")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone_numbers: list[str] = Field(min_length=1)
    services: list[ServiceSpec] = Field(default_factory=list)
    calcom: CalcomSpec | None = None  # the company's own Cal.com (db/credentials.py); else the global one
    retell: RetellSpec | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("phone_numbers")
    @classmethod
    def _e164(cls, values: list[str]) -> list[str]:
        normalised = []
        for value in values:
            try:
                parsed = phonenumbers.parse(str(value), None)
            except phonenumbers.NumberParseException:
                raise ValueError(f"{value!r} is not an international phone number (+...)") from None
            if not phonenumbers.is_valid_number(parsed):
                raise ValueError(f"{value!r} is not a valid phone number")
            normalised.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        return normalised


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    companies: list[CompanySpec]


@dataclass(frozen=True)
class LoadSummary:
    companies: int
    phone_numbers: int
    services: int
    changed: int


def _where(path: Path, loc: tuple[int | str, ...], raw: object) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            if i == 1 and isinstance(raw, dict):
                companies = raw.get("companies")
                if isinstance(companies, list) and item < len(companies):
                    slug = companies[item].get("slug") if isinstance(companies[item], dict) else None
                    if slug:
                        parts[-1] += f" ({slug})"
        else:
            parts.append(str(item))
    return f"{path}: {'.'.join(parts) or 'file'}"


def parse_tenants(path: Path) -> TenantsFile:
    """Read and validate; raises TenantFileError naming the file, the entry and the problem."""
    try:
        # libyaml's safe loader when present: the pure-Python one takes seconds for 10 000 companies.
        raw = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except OSError as exc:
        raise TenantFileError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise TenantFileError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    raw = substitute_env(raw, str(path))
    try:
        spec = TenantsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise TenantFileError(f"{_where(path, tuple(first['loc']), raw)}: {message}") from None
    seen_numbers: dict[str, str] = {}
    seen_slugs: set[str] = set()
    for index, company in enumerate(spec.companies):
        where = f"{path}: companies[{index}] ({company.slug})"
        if company.slug in seen_slugs:
            raise TenantFileError(f"{where}.slug: duplicate company slug {company.slug!r}")
        seen_slugs.add(company.slug)
        for number in company.phone_numbers:
            if number in seen_numbers:
                raise TenantFileError(
                    f"{where}.phone_numbers: duplicate phone number {number} "
                    f"(already used by {seen_numbers[number]})"
                )
            seen_numbers[number] = company.slug
        names = [s.name for s in company.services]
        for name in names:
            if names.count(name) > 1:
                raise TenantFileError(f"{where}.services: duplicate service name {name!r}")
    return spec


async def _refuse_taken_numbers(session: AsyncSession, spec: TenantsFile) -> None:
    """A number already answering for another company is not silently taken over.

    The called number picks the company, so moving one hands every later call (and that company's
    callers' appointments) to the new owner. That must be a decision (``--move-numbers``), never
    the side effect of a copy-pasted YAML entry; checked for the whole file before anything is written.
    """
    wanted = {number: c.slug for c in spec.companies for number in c.phone_numbers}
    if not wanted:
        return
    rows = await session.execute(
        select(PhoneNumber.number, Company.slug)
        .join(Company, Company.id == PhoneNumber.company_id)
        .where(PhoneNumber.number.in_(list(wanted)))
        .order_by(PhoneNumber.number)
    )
    for number, owner in rows.all():
        if owner != wanted[number]:
            raise TenantFileError(
                f"phone number {number} belongs to company {owner!r}; {wanted[number]!r} cannot take it "
                f"over — remove it from {owner!r} first, or load with --move-numbers to move it"
            )


async def load_tenants(
    session: AsyncSession, spec: TenantsFile, *, move_numbers: bool = False
) -> LoadSummary:
    """Upsert companies by slug, services by (company, name); phone numbers follow the file exactly.

    A number owned by a company is moved to another only with ``move_numbers``.
    """
    if not move_numbers:
        await _refuse_taken_numbers(session, spec)
    changed = 0
    services = numbers = 0
    for cspec in spec.companies:
        company = (
            await session.execute(select(Company).where(Company.slug == cspec.slug))
        ).scalar_one_or_none()
        country = cspec.country or phonenumbers.region_code_for_number(
            phonenumbers.parse(cspec.phone_numbers[0], None)
        )
        fields = {
            "name": cspec.name,
            "timezone": cspec.timezone,
            "email_domain": cspec.email_domain,
            "locale": cspec.locale,
            "country": country,
        }
        if company is None:
            company = Company(slug=cspec.slug, **fields)
            session.add(company)
            changed += 1
        elif any(getattr(company, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(company, key, value)
            changed += 1
        await session.flush()

        existing = {
            p.number: p
            for p in (
                await session.execute(select(PhoneNumber).where(PhoneNumber.number.in_(cspec.phone_numbers)))
            ).scalars()
        }
        stale = await session.execute(
            delete(PhoneNumber).where(
                PhoneNumber.company_id == company.id, PhoneNumber.number.not_in(cspec.phone_numbers)
            )
        )
        changed += int(getattr(stale, "rowcount", 0) or 0)
        for number in cspec.phone_numbers:
            row = existing.get(number)
            if row is None:
                session.add(PhoneNumber(company_id=company.id, number=number))
                changed += 1
            elif row.company_id != company.id:
                row.company_id = company.id
                changed += 1
            numbers += 1

        rows = await session.execute(select(Service).where(Service.company_id == company.id))
        current = {s.name: s for s in rows.scalars()}
        for sspec in cspec.services:
            values = sspec.model_dump()
            service = current.get(sspec.name)
            if service is None:
                session.add(Service(company_id=company.id, **values))
                changed += 1
            elif any(getattr(service, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(service, key, value)
                changed += 1
            services += 1
        await session.flush()
    return LoadSummary(len(spec.companies), numbers, services, changed)
