"""Speaking Cal.com precisely: the ``cal-api-version`` of every endpoint, pinned in one table.

Cal.com routes a request whose version header matches no controller *silently* to an older controller
(issue #29785): ``GET /v2/bookings`` once fell back to the legacy 2024-04-15 controller and ignored the
``attendeeEmail`` filter (#28512). The body shape then differs, so a response that fails to parse is
checked for the legacy shape; a match is logged (``calcom.version_fallback``) and counted
(``voicebook_calcom_version_fallback_total``) before it surfaces as a malformed answer.

The create input also accepts ``allowConflicts``, ``allowBookingOutOfBounds`` and ``skipBookingLimits``,
honoured when the request is authenticated as a host — which is exactly what a backend booking with the
business's own key is. They would skip the host's conflict check, so they are never sent.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from voicebook import metrics
from voicebook.calcom.schemas import BOOKINGS_API_VERSION, SLOTS_API_VERSION

log = structlog.get_logger("voicebook.calcom")

EVENT_TYPES_API_VERSION = "2024-06-14"
API_VERSIONS: dict[str, str] = {
    "slots.get": SLOTS_API_VERSION,
    "slots.reserve": SLOTS_API_VERSION,
    "bookings.create": BOOKINGS_API_VERSION,
    "bookings.get": BOOKINGS_API_VERSION,
    "bookings.list": BOOKINGS_API_VERSION,
    "bookings.cancel": BOOKINGS_API_VERSION,
    "bookings.reschedule": BOOKINGS_API_VERSION,
    "event_types.list": EVENT_TYPES_API_VERSION,
    "team_event_types.list": EVENT_TYPES_API_VERSION,
}
BYPASS_FIELDS = frozenset({"allowConflicts", "allowBookingOutOfBounds", "skipBookingLimits"})


def pinned(endpoint: str, version: str) -> str:
    """The table's version for ``endpoint`` (the caller's only for an endpoint the table lacks)."""
    return API_VERSIONS.get(endpoint, version)


def without_bypass(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """``body`` without the fields that would bypass the host's conflict check and limits."""
    if body is None or not BYPASS_FIELDS & body.keys():
        return body
    return {k: v for k, v in body.items() if k not in BYPASS_FIELDS}


def _legacy_booking(item: object) -> bool:
    return isinstance(item, dict) and "startTime" in item and "start" not in item


def legacy_shape(endpoint: str, content: bytes) -> bool:
    """Does this body look like what the legacy (2024-04-15) controller answers for ``endpoint``?"""
    try:
        body = json.loads(content)
    except ValueError:
        return False
    data = body.get("data") if isinstance(body, dict) else None
    if endpoint == "bookings.list":
        return isinstance(data, dict) and "bookings" in data
    if endpoint.startswith("bookings."):
        return _legacy_booking(data)
    if endpoint == "slots.get":
        return isinstance(data, dict) and "slots" in data
    return False


def report_if_fallback(endpoint: str, content: bytes) -> bool:
    """Log and count a response in the legacy shape; True when it was one."""
    if not legacy_shape(endpoint, content):
        return False
    metrics.CALCOM_VERSION_FALLBACK.labels(endpoint=endpoint).inc()
    log.error(
        "calcom.version_fallback",
        endpoint=endpoint,
        pinned=API_VERSIONS.get(endpoint),
        detail="Cal.com answered in an older controller's shape: the pinned cal-api-version was not honoured",
    )
    return True
