"""GET /v2/bookings filtering and paging, and GET /v2/slots rendering, as Cal.com does them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from voicebook.calcom.sandbox.inputs import bad_request, parse_instant
from voicebook.calcom.sandbox.models import StoredBooking
from voicebook.calcom.sandbox.render import iso_in_zone

DEFAULT_TAKE = 100
MAX_TAKE = 250
_SORTS = {"sortStart": "start", "sortEnd": "end", "sortCreated": "created_at", "sortUpdatedAt": "updated_at"}
_STATUS_FILTERS = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")


def _status_matches(booking: StoredBooking, wanted: list[str], now: datetime) -> bool:
    """``addStatusesQueryFilters`` in get.handler.ts; any listed status may match."""
    live = booking.status not in ("cancelled", "rejected")
    checks = {
        "upcoming": booking.end >= now and live,
        "recurring": False,
        "past": booking.end <= now and live,
        "cancelled": not live,
        "unconfirmed": booking.end >= now and booking.status == "pending",
    }
    return any(checks[w] for w in wanted)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request([f"{name} must be an integer number"]) from None
    if value < 0:
        raise bad_request([f"{name} must not be less than 0"])
    return value


def filter_bookings(
    bookings: list[StoredBooking], params: Mapping[str, str], now: datetime
) -> tuple[list[StoredBooking], dict[str, Any]]:
    preds: list[Callable[[StoredBooking], bool]] = []
    if "status" in params:
        wanted = [s.strip() for s in params["status"].split(",") if s.strip()]
        if any(w not in _STATUS_FILTERS for w in wanted):
            raise bad_request([f"status must be a comma list of {', '.join(_STATUS_FILTERS)}"])
        preds.append(lambda b: _status_matches(b, wanted, now))
    if "attendeeEmail" in params:
        email = params["attendeeEmail"].strip()
        preds.append(lambda b: any(a.email == email for a in b.attendees))
    if "attendeeName" in params:
        name = params["attendeeName"].strip()
        preds.append(lambda b: any(a.name == name for a in b.attendees))
    if "bookingUid" in params:
        uid = params["bookingUid"]
        preds.append(lambda b: b.uid == uid)
    ids: set[int] = set()
    for key in ("eventTypeId", "eventTypeIds"):
        if key in params:
            try:
                ids.update(int(v) for v in params[key].split(",") if v.strip())
            except ValueError:
                raise bad_request([f"{key} must be a number"]) from None
    if ids:
        preds.append(lambda b: b.event_type_id in ids)
    for key, attr, after in (
        ("afterStart", "start", True),
        ("beforeEnd", "end", False),
        ("afterCreatedAt", "created_at", True),
        ("beforeCreatedAt", "created_at", False),
        ("afterUpdatedAt", "updated_at", True),
        ("beforeUpdatedAt", "updated_at", False),
    ):
        if key in params:
            bound = parse_instant(params[key], key)
            preds.append(_bound(attr, bound, after))
    matched = [b for b in bookings if all(p(b) for p in preds)]
    matched.sort(key=lambda b: (b.start, b.id))
    for key, attr in _SORTS.items():
        if key in params:
            matched.sort(key=_sort_key(attr), reverse=params[key] == "desc")
    take = min(_int_param(params, "take", DEFAULT_TAKE), MAX_TAKE) or DEFAULT_TAKE
    skip = _int_param(params, "skip", 0)
    page = matched[skip : skip + take]
    total = len(matched)
    pagination = {
        "totalItems": total,
        "remainingItems": max(total - skip - len(page), 0),
        "returnedItems": len(page),
        "itemsPerPage": take,
        "currentPage": skip // take + 1,
        "totalPages": math.ceil(total / take),
        "hasNextPage": skip + len(page) < total,
        "hasPreviousPage": skip > 0,
    }
    return page, pagination


def _sort_key(attr: str) -> Callable[[StoredBooking], datetime]:
    def key(booking: StoredBooking) -> datetime:
        value: datetime = getattr(booking, attr)
        return value

    return key


def _bound(attr: str, bound: datetime, after: bool) -> Callable[[StoredBooking], bool]:
    if after:
        return lambda b: bool(getattr(b, attr) >= bound)
    return lambda b: bool(getattr(b, attr) <= bound)


def render_slots(
    starts: list[datetime], zone: str | None, length_minutes: int, with_end: bool
) -> dict[str, list[dict[str, str]]]:
    """Group by local date; ``start`` in ``timeZone`` (or UTC ``Z``), as slots-output.service.ts."""
    tz = ZoneInfo(zone) if zone else None
    days: dict[str, list[dict[str, str]]] = {}
    for start in starts:
        key = (start.astimezone(tz) if tz else start).date().isoformat()
        item = {"start": iso_in_zone(start, zone)}
        if with_end:
            item["end"] = iso_in_zone(start + timedelta(minutes=length_minutes), zone)
        days.setdefault(key, []).append(item)
    return days
