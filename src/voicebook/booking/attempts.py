"""The write-ahead booking attempt and its state machine.

    claimed → sent → confirmed → recorded
         ╲      ╲→ unknown ─┘  (ambiguous outcome, resolved by lookup)
          ╲→ failed (nothing booked; a new try may take it over)   rejected (guards refused the answer)

Every transition is one UPDATE guarded by the expected state, so two workers can never both move an
attempt; the claim itself is an insert-or-nothing on the unique idempotency key. On the caller's path an
accepted booking goes from ``sent`` straight to ``recorded`` in the one transaction that writes the
appointment (nothing is gained by committing ``confirmed`` first: a crash before that commit leaves
``sent``, which the reconciler resolves by lookup). ``confirmed`` is the reconciler's step: a booking it
found upstream, made durable before it records it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.db.models import BookingAttempt
from voicebook.db.queries import insert_or_nothing

CLAIMED, SENT, UNKNOWN, CONFIRMED, RECORDED = "claimed", "sent", "unknown", "confirmed", "recorded"
FAILED, REJECTED = "failed", "rejected"
IN_FLIGHT = (CLAIMED, SENT, UNKNOWN, CONFIRMED)


async def claim(session: AsyncSession, values: dict[str, Any], now: datetime, lock_seconds: float) -> bool:
    """Insert the attempt unless its key exists; True when this caller created it (and holds the lock)."""
    row = {
        "public_id": uuid.uuid4().hex,
        "state": CLAIMED,
        "locked_until": now + timedelta(seconds=lock_seconds),
        "tries": 0,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    return await insert_or_nothing(session, BookingAttempt.__table__, row)  # type: ignore[arg-type]


async def by_key(session: AsyncSession, key: str) -> BookingAttempt | None:
    return (
        await session.execute(
            select(BookingAttempt)
            .where(BookingAttempt.idempotency_key == key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def by_id(session: AsyncSession, attempt_id: int) -> BookingAttempt:
    return (
        await session.execute(
            select(BookingAttempt)
            .where(BookingAttempt.id == attempt_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def move(
    session: AsyncSession,
    attempt_id: int,
    expected: tuple[str, ...],
    new_state: str,
    now: datetime,
    **fields: Any,
) -> bool:
    """Move from one of ``expected`` to ``new_state``; False when someone else moved it first."""
    result = await session.execute(
        update(BookingAttempt)
        .where(BookingAttempt.id == attempt_id, BookingAttempt.state.in_(expected))
        .values(state=new_state, updated_at=now, **fields)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def take_over(
    session: AsyncSession, attempt_id: int, states: tuple[str, ...], now: datetime, lock_seconds: float
) -> bool:
    """Take the lock of an attempt whose previous holder is gone (lock expired) or that failed."""
    result = await session.execute(
        update(BookingAttempt)
        .where(
            BookingAttempt.id == attempt_id,
            BookingAttempt.state.in_(states),
            or_(BookingAttempt.locked_until.is_(None), BookingAttempt.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=lock_seconds), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
