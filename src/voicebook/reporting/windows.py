"""What the report queries share: half-open UTC windows, the companies and their time zones.

Windows are half-open ``[start, end)`` in UTC and must be given as aware datetimes. A company's time zone
that is missing or unknown falls back to UTC rather than failing the whole report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from voicebook.db.models import Company
from voicebook.errors import ReportWindowError

UTC_ZONE = ZoneInfo("UTC")


def to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ReportWindowError("report windows need aware datetimes")
    return moment.astimezone(UTC)


def zone_or_utc(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def in_window(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    start: datetime,
    end: datetime,
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return column >= to_utc(start), column < to_utc(end)


async def companies_by_id(session: AsyncSession) -> dict[int, Company]:
    return {c.id: c for c in (await session.execute(select(Company))).scalars()}
