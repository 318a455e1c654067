"""Every guard verdict, replay and reconciler action: one guard_events row and one log event.

Rejections are logged with the exact phrase as the event ("STALE BOOKING DETECTED", ...), so
``grep "CALL ID MISMATCH"`` over the JSON logs keeps working.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.models import GuardEvent

log = structlog.get_logger("voicebook.booking")


def guard_event(
    session: AsyncSession,
    *,
    layer: str,
    verdict: str,
    reason: str,
    call_id: str | None,
    attempt_id: str | None,
    company_id: int | None,
    calcom_booking_uid: str | None,
    details: dict[str, Any] | None = None,
    rejected: bool = False,
) -> None:
    session.add(
        GuardEvent(
            layer=layer,
            verdict=verdict,
            reason=reason,
            call_id=call_id,
            attempt_id=attempt_id,
            company_id=company_id,
            calcom_booking_uid=calcom_booking_uid,
            details=details,
        )
    )
    _emit(verdict, layer, reason, call_id, attempt_id, calcom_booking_uid, rejected=rejected)


async def write_guard_event(
    session: AsyncSession,
    *,
    layer: str,
    verdict: str,
    reason: str,
    call_id: str | None,
    attempt_id: str | None,
    company_id: int | None,
    calcom_booking_uid: str | None,
    details: dict[str, Any] | None = None,
    rejected: bool = False,
) -> None:
    """``guard_event`` as one Core INSERT, executed now: the booking path's cheaper twin.

    The same row and the same log event; it skips the ORM unit of work (object state, flush
    planning), which cost about as much as the statement itself on the booking path.
    """
    row = {
        "layer": layer,
        "verdict": verdict,
        "reason": reason,
        "call_id": call_id,
        "attempt_id": attempt_id,
        "company_id": company_id,
        "calcom_booking_uid": calcom_booking_uid,
        "details": details,
    }
    # Values bound at execution: one cached statement for every event. ``details=None`` is stored as
    # JSON null, exactly as the ORM path above stores it.
    await session.execute(insert(GuardEvent.__table__), row)  # type: ignore[arg-type]
    _emit(verdict, layer, reason, call_id, attempt_id, calcom_booking_uid, rejected=rejected)


def _emit(
    verdict: str,
    layer: str,
    reason: str,
    call_id: str | None,
    attempt_id: str | None,
    calcom_booking_uid: str | None,
    *,
    rejected: bool,
) -> None:
    emit = log.warning if rejected else log.info
    emit(
        verdict,
        layer=layer,
        reason=reason,
        call_id=call_id,
        attempt_id=attempt_id,
        calcom_booking_uid=calcom_booking_uid,
    )
