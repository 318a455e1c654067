"""Retell call lifecycle events converge on one ``calls`` row, whatever their order or repetition.

Retell retries webhooks and does not wait for one to succeed before sending the next, so
``call_analyzed`` can arrive before ``call_ended`` and either can arrive three times. Each event only
fills in what it knows and the status never moves backwards (ongoing → ended → analyzed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db import queries
from voicebook.db.base import utc_now
from voicebook.db.models import Call

_RANK = {"registered": 0, "ongoing": 1, "not_connected": 2, "error": 2, "ended": 2, "analyzed": 3}
HANDLED = frozenset({"call_started", "call_ended", "call_analyzed"})


@dataclass(frozen=True)
class CallFacts:
    call_id: str
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    direction: str | None = None
    status: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    summary: str | None = None
    successful: bool | None = None


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


async def apply_call_event(session: AsyncSession, event: str, facts: CallFacts) -> bool:
    """Apply one webhook event; False for events we acknowledge but ignore."""
    if event not in HANDLED:
        return False
    now = utc_now()
    company = await queries.company_by_number(session, facts.to_number) if facts.to_number else None
    await queries.insert_or_nothing(
        session,
        Call.__table__,  # type: ignore[arg-type]
        {"retell_call_id": facts.call_id, "status": "ongoing", "created_at": now, "updated_at": now},
    )
    call = (
        await session.execute(select(Call).where(Call.retell_call_id == facts.call_id).with_for_update())
    ).scalar_one()
    status = {"call_started": "ongoing", "call_ended": "ended", "call_analyzed": "analyzed"}[event]
    if facts.status in ("not_connected", "error") and event != "call_analyzed":
        status = facts.status
    if _RANK.get(status, 0) > _RANK.get(call.status, 0):
        call.status = status
    fill = {
        "company_id": company.id if company else None,
        "from_number": facts.from_number,
        "to_number": facts.to_number,
        "agent_id": facts.agent_id,
        "direction": facts.direction,
        "started_at": _ms(facts.start_ms),
        "ended_at": _ms(facts.end_ms),
        "duration_ms": facts.duration_ms,
        "disconnection_reason": facts.disconnection_reason,
        "summary": facts.summary,
        "successful": facts.successful,
    }
    for key, value in fill.items():
        if value is not None and getattr(call, key) != value:
            setattr(call, key, value)
    if event == "call_analyzed" and call.analyzed_at is None:
        call.analyzed_at = now
    call.updated_at = now
    return True
