"""Wire models for the Cal.com v2 endpoints we use (bookings 2024-08-13, slots 2024-09-04).

Response models ignore unknown fields (Cal.com adds fields without a version bump) but require
what the adapter relies on; a missing one is a malformed response (see ``errors.malformed_response``).
Request models mirror the OpenAPI input schemas and serialise by alias, dropping ``None``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

BOOKINGS_API_VERSION = "2024-08-13"
SLOTS_API_VERSION = "2024-09-04"

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_CHARS = 40
METADATA_MAX_VALUE_CHARS = 500

# Documented statuses; responses keep ``status`` a plain string so a new value Cal.com adds is
# passed through rather than turning a successful create into a "malformed" (ambiguous) answer.
BookingStatus = Literal["accepted", "pending", "cancelled", "rejected"]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def to_utc_iso(value: datetime) -> str:
    """Cal.com wants UTC instants; a naive datetime is a bug upstream, so refuse it."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    utc = value.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


# --- requests -------------------------------------------------------------------------------


class CreateBookingAttendee(_Wire):
    name: str
    time_zone: str
    email: str | None = None
    phone_number: str | None = None
    language: str | None = None


class CreateBookingInput(_Wire):
    start: str
    event_type_id: int
    attendee: CreateBookingAttendee
    metadata: dict[str, str] = Field(default_factory=dict)
    booking_fields_responses: dict[str, Any] | None = None
    length_in_minutes: int | None = None

    @field_validator("metadata")
    @classmethod
    def _cal_metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        # Cal.com rejects these with a 400; failing before sending keeps the error local and clear.
        if len(value) > METADATA_MAX_KEYS:
            raise ValueError(f"metadata has more than {METADATA_MAX_KEYS} keys")
        for key, item in value.items():
            if len(key) > METADATA_MAX_KEY_CHARS:
                raise ValueError(f"metadata key longer than {METADATA_MAX_KEY_CHARS}: {key!r}")
            if len(item) > METADATA_MAX_VALUE_CHARS:
                raise ValueError(f"metadata value of {key!r} exceeds {METADATA_MAX_VALUE_CHARS}")
        return value


class CancelBookingInput(_Wire):
    cancellation_reason: str | None = None


class RescheduleBookingInput(_Wire):
    start: str
    rescheduling_reason: str | None = None


class ReserveSlotInput(_Wire):
    event_type_id: int
    slot_start: str
    slot_duration: int | None = None


# --- responses ------------------------------------------------------------------------------


class BookingHost(_Wire):
    id: int
    name: str | None = None
    email: str | None = None
    username: str | None = None
    time_zone: str | None = None


class BookingAttendee(_Wire):
    name: str
    email: str
    time_zone: str = "UTC"
    language: str | None = None
    absent: bool = False
    phone_number: str | None = None


class EventTypeRef(_Wire):
    id: int
    slug: str | None = None


class BookingOutput(_Wire):
    id: int
    uid: str
    title: str
    status: str
    start: datetime
    end: datetime
    created_at: datetime
    attendees: list[BookingAttendee]
    duration: float | None = None
    event_type_id: int | None = None
    event_type: EventTypeRef | None = None
    hosts: list[BookingHost] = Field(default_factory=list)
    description: str | None = None
    location: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    cancellation_reason: str | None = None
    rescheduling_reason: str | None = None
    booking_fields_responses: dict[str, Any] = Field(default_factory=dict)

    @field_validator("start", "end", "created_at", "updated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp without a UTC offset")
        return value

    @property
    def resolved_event_type_id(self) -> int | None:
        """``eventTypeId`` is deprecated in favour of ``eventType.id``; accept either."""
        return self.event_type.id if self.event_type is not None else self.event_type_id


T = TypeVar("T")


class Envelope(_Wire, Generic[T]):
    status: Literal["success"]
    data: T


class Pagination(_Wire):
    total_items: int | None = None
    returned_items: int | None = None
    items_per_page: int | None = None
    current_page: int | None = None
    has_next_page: bool


class BookingsPage(_Wire):
    status: Literal["success"]
    data: list[BookingOutput]
    pagination: Pagination


class Slot(_Wire):
    start: datetime
    end: datetime | None = None

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("slot start without a UTC offset")
        return value


class SlotsEnvelope(_Wire):
    """Slot items are ``{start}`` objects in Cal.com's code, strings in its OpenAPI doc: take both."""

    status: Literal["success"]
    data: dict[str, list[Slot]]

    @field_validator("data", mode="before")
    @classmethod
    def _string_items(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                day: [{"start": s} if isinstance(s, str) else s for s in items]
                if isinstance(items, list)
                else items
                for day, items in value.items()
            }
        return value

    def starts(self) -> list[Slot]:
        return sorted((s for items in self.data.values() for s in items), key=lambda s: s.start)


class ReservationOutput(_Wire):
    event_type_id: int
    slot_start: datetime
    slot_end: datetime
    slot_duration: float
    reservation_uid: str
    reservation_duration: float
    reservation_until: datetime


class EventTypeOutput(_Wire):
    """One event type as ``GET /v2/event-types`` (2024-06-14) lists it: what ``tenants sync`` compares."""

    id: int
    length_in_minutes: int | None = None
    title: str | None = None
    slug: str | None = None


class EventTypesEnvelope(_Wire):
    status: Literal["success"]
    data: list[EventTypeOutput]
