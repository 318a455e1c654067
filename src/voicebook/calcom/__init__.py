"""The Cal.com v2 adapter: HTTP client, ``CalendarGateway`` implementation, and a sandbox."""

from voicebook.calcom.client import CalcomClient, OnResponse
from voicebook.calcom.errors import (
    CalcomError,
    CalcomRejected,
    CalcomUnavailable,
    OutcomeUnknown,
    RateLimited,
    SlotUnavailable,
)
from voicebook.calcom.gateway import CalcomGateway
from voicebook.calcom.transport import build_http_client

__all__ = [
    "CalcomClient",
    "CalcomError",
    "CalcomGateway",
    "CalcomRejected",
    "CalcomUnavailable",
    "OnResponse",
    "OutcomeUnknown",
    "RateLimited",
    "SlotUnavailable",
    "build_http_client",
]
