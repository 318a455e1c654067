"""The use cases the HTTP layer and the CLI call; each takes its collaborators as arguments."""

from __future__ import annotations

from voicebook.booking.availability import check as check_availability
from voicebook.booking.call_events import CallFacts, apply_call_event
from voicebook.booking.changes import cancel, reschedule
from voicebook.booking.flow import BookArgs, book
from voicebook.booking.tenancy import (
    CallContext,
    Offering,
    OfferingCache,
    ServiceRef,
    Tenant,
    resolve_tenant,
)

__all__ = [
    "BookArgs",
    "CallContext",
    "CallFacts",
    "Offering",
    "OfferingCache",
    "ServiceRef",
    "Tenant",
    "apply_call_event",
    "book",
    "cancel",
    "check_availability",
    "reschedule",
    "resolve_tenant",
]
