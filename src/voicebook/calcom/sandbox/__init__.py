"""An in-memory Cal.com v2 emulator (bookings + slots) with Cal.com's dedupe and switchable faults."""

from voicebook.calcom.sandbox.app import Sandbox
from voicebook.calcom.sandbox.clock import SandboxClock
from voicebook.calcom.sandbox.faults import ENDPOINTS, Fault, FaultKind, Faults
from voicebook.calcom.sandbox.models import (
    SandboxEventType,
    SandboxHost,
    StoredAttendee,
    StoredBooking,
    WorkingHours,
    event_type_from_service,
)
from voicebook.calcom.sandbox.webhooks import SIGNATURE_HEADER, sign

__all__ = [
    "ENDPOINTS",
    "SIGNATURE_HEADER",
    "Fault",
    "FaultKind",
    "Faults",
    "Sandbox",
    "SandboxClock",
    "SandboxEventType",
    "SandboxHost",
    "StoredAttendee",
    "StoredBooking",
    "WorkingHours",
    "event_type_from_service",
    "sign",
]
