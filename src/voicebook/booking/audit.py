"""Every guard verdict, replay and reconciler action: one guard_events row and one log event.

Rejections are logged with the exact phrase as the event ("STALE BOOKING DETECTED", ...), so
``grep "CALL ID MISMATCH"`` over the JSON logs keeps working.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import insert

from voicebook.db.models import GuardEvent
from voicebook.db.queries import Executor

log = structlog.get_logger("voicebook.booking")
_INSERT = insert(GuardEvent.__table__)  # type: ignore[arg-type]  # built once, values bound per event


async def guard_event(
    session: Executor,
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
    """Write one ``guard_events`` row (a Core INSERT, executed now) and its log event.

    Core rather than the ORM: the unit of work (object state, flush planning) cost about as much as the
    statement itself on the booking path, and nothing reads the row back in the same transaction.
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
    # Values bound at execution: one cached statement for every event; ``details=None`` is JSON null.
    await session.execute(_INSERT, row)
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
