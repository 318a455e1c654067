"""What the booking domain needs from any calendar.

The calendar is the one dependency we abstract: it is slow, external and fallible. Adapters
(``voicebook.calcom.gateway``) implement this protocol and raise only ``booking.errors.CalendarError``
subclasses, so the domain can tell "nothing happened" from "something may have happened".
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from voicebook.booking.types import BookingQuery, BookingRequest, CalendarBooking


class CalendarGateway(Protocol):
    async def find_slots(self, event_type_id: int, start: datetime, end: datetime) -> list[datetime]:
        """Free slot starts (UTC) in ``[start, end)``."""
        ...

    async def create_booking(self, request: BookingRequest) -> CalendarBooking:
        """Create; may answer with an *existing* booking (Cal.com dedupe)."""
        ...

    async def get_booking(self, uid: str) -> CalendarBooking | None: ...

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        """Authoritative lookup: raises ``CalendarError`` rather than answering an incomplete list."""
        ...

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking: ...

    async def reschedule_booking(
        self, uid: str, new_start: datetime, reason: str | None = None
    ) -> CalendarBooking: ...


class CalendarDirectory(Protocol):
    """The calendar of each company (issue 16): its own Cal.com account, or the global one.

    Composed outside the domain (``calcom.registry``); the domain only asks for a company's gateway, so
    a booking for company B can never go through company A's credential.
    """

    async def for_company(self, company_id: int | None) -> CalendarGateway:
        """The gateway for ``company_id`` (``None``: the global calendar)."""
        ...

    async def is_disconnected(self, company_id: int) -> bool:
        """True when the company's own credential was refused or revoked (no request would work)."""
        ...


class SingleCalendar:
    """A directory with one calendar for every company: the single-account deployment, and tests."""

    def __init__(self, gateway: CalendarGateway) -> None:
        self.gateway = gateway

    async def for_company(self, company_id: int | None) -> CalendarGateway:
        return self.gateway

    async def is_disconnected(self, company_id: int) -> bool:
        return False
