"""The knobs of the booking flow, taken from settings once so the domain never reads the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from voicebook.db.base import utc_now


@dataclass(frozen=True)
class GuardPolicy:
    enabled: bool = True
    stale_booking_seconds: float = 30.0
    clock_skew_seconds: float = 5.0


@dataclass(frozen=True)
class BookingPolicy:
    guards: GuardPolicy = field(default_factory=GuardPolicy)
    fallback_email_template: str = "booking+{call_id}@{company_domain}"
    lock_seconds: float = 30.0
    resolve_budget_seconds: float = 8.0
    wait_in_flight_seconds: float = 2.0
    clock: Callable[[], datetime] = utc_now
