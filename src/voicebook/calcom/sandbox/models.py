"""The sandbox's configuration and stored rows: event types, hosts, bookings.

Shapes follow Cal.com's DB rows closely enough that the output builder can mirror
``output.service.ts``; everything round-trips through JSON for the optional state file.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

SchedulingType = Literal["individual", "roundRobin"]
StoredStatus = Literal["accepted", "pending", "cancelled", "rejected"]

FLICKR_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
UID_LENGTH = 22
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# The largest multiple of the alphabet's size that fits a byte: bytes below it map uniformly.
_UNBIASED_BYTES = 256 // len(FLICKR_BASE58) * len(FLICKR_BASE58)


def new_uid() -> str:
    """Same alphabet and length as Cal.com's short-uuid uids, so format checks behave alike.

    Uniform over the alphabet like ``secrets.choice`` per character, but from one ``token_bytes``
    call (rejection sampling) instead of 22 calls into the system RNG.
    """
    chars: list[str] = []
    while len(chars) < UID_LENGTH:
        chars.extend(
            FLICKR_BASE58[byte % len(FLICKR_BASE58)]
            for byte in secrets.token_bytes(UID_LENGTH + 8)
            if byte < _UNBIASED_BYTES
        )
    return "".join(chars[:UID_LENGTH])


@dataclass(frozen=True, slots=True)
class SandboxHost:
    id: int
    name: str
    email: str
    username: str
    time_zone: str = "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class WorkingHours:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: time
    end: time


WorkingHoursSpec = tuple[str | Collection[int], str, str] | WorkingHours


def parse_days(spec: str | Collection[int]) -> frozenset[int]:
    """Accept ``"Mon-Fri"``, ``"Mon,Wed,Sat"`` or weekday numbers."""
    if not isinstance(spec, str):
        return frozenset(int(d) for d in spec)
    days: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        lo = _WEEKDAYS.index(first[:3])
        hi = _WEEKDAYS.index(last[:3]) if last else lo
        days.update(range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(hi + 1)])
    return frozenset(days)


def to_working_hours(spec: WorkingHoursSpec) -> WorkingHours:
    if isinstance(spec, WorkingHours):
        return spec
    days, start, end = spec
    return WorkingHours(parse_days(days), time.fromisoformat(start), time.fromisoformat(end))


DEFAULT_HOST = SandboxHost(1, "Sandbox Host", "host@sandbox.invalid", "sandbox-host")


@dataclass(frozen=True)
class SandboxEventType:
    id: int
    slug: str
    length_minutes: int
    scheduling_type: SchedulingType = "individual"
    requires_confirmation: bool = False
    hosts: Sequence[SandboxHost] = (DEFAULT_HOST,)
    time_zone: str = "Europe/Berlin"
    working_hours: Sequence[WorkingHoursSpec] = field(default=(("Mon-Fri", "09:00", "17:00"),), compare=False)
    slot_interval_minutes: int | None = None
    minimum_notice_minutes: int = 0
    title: str | None = None
    # The normalised working hours; equality uses these, not the spelling they were given in.
    windows: tuple[WorkingHours, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError(f"event type {self.id} needs at least one host")
        ZoneInfo(self.time_zone)  # fail at configuration time, not on the first request
        object.__setattr__(self, "hosts", tuple(self.hosts))
        object.__setattr__(self, "windows", tuple(to_working_hours(w) for w in self.working_hours))

    @property
    def is_round_robin(self) -> bool:
        return self.scheduling_type == "roundRobin"

    @property
    def is_team(self) -> bool:
        return self.is_round_robin

    @property
    def step_minutes(self) -> int:
        return self.slot_interval_minutes or self.length_minutes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "length_minutes": self.length_minutes,
            "scheduling_type": self.scheduling_type,
            "requires_confirmation": self.requires_confirmation,
            "hosts": [asdict(h) for h in self.hosts],
            "time_zone": self.time_zone,
            "working_hours": [
                [sorted(w.days), w.start.strftime("%H:%M"), w.end.strftime("%H:%M")] for w in self.windows
            ],
            "slot_interval_minutes": self.slot_interval_minutes,
            "minimum_notice_minutes": self.minimum_notice_minutes,
            "title": self.title,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxEventType:
        values = dict(data)
        if values.get("hosts"):
            values["hosts"] = tuple(SandboxHost(**h) for h in values["hosts"])
        else:
            values.pop("hosts", None)
        if "working_hours" in values:
            values["working_hours"] = tuple((w[0], w[1], w[2]) for w in values["working_hours"])
        return cls(**values)


@dataclass(slots=True)
class StoredAttendee:
    name: str
    email: str
    time_zone: str
    language: str = "en"
    phone_number: str | None = None
    absent: bool = False


@dataclass(slots=True)
class StoredBooking:
    id: int
    uid: str
    event_type_id: int
    host_id: int
    title: str
    status: StoredStatus
    start: datetime
    end: datetime
    attendees: list[StoredAttendee]
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    location: str = ""
    cancellation_reason: str | None = None
    rescheduling_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None

    def blocks(self) -> bool:
        """Accepted and pending bookings make the host busy, as in Cal.com's busy-times query."""
        return self.status in ("accepted", "pending")

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("start", "end", "created_at", "updated_at"):
            data[key] = getattr(self, key).isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredBooking:
        values = dict(data)
        for key in ("start", "end", "created_at", "updated_at"):
            values[key] = datetime.fromisoformat(values[key])
        values["attendees"] = [StoredAttendee(**a) for a in values["attendees"]]
        return cls(**values)


def event_type_from_service(
    event_type_id: int,
    name: str,
    duration_minutes: int,
    round_robin: bool,
    time_zone: str,
) -> SandboxEventType:
    """A plausible Cal.com event type for a tenant service: Mon–Sat 08–18, 2 RR hosts or 1."""
    slug = "-".join(name.lower().split()) or f"service-{event_type_id}"
    count = 2 if round_robin else 1
    hosts = tuple(
        SandboxHost(
            id=event_type_id * 100 + n,
            name=f"{name} Host {n}",
            email=f"host{n}.{event_type_id}@sandbox.invalid",
            username=f"host{n}-{event_type_id}",
            time_zone=time_zone,
        )
        for n in range(1, count + 1)
    )
    return SandboxEventType(
        id=event_type_id,
        slug=slug,
        length_minutes=duration_minutes,
        scheduling_type="roundRobin" if round_robin else "individual",
        hosts=hosts,
        time_zone=time_zone,
        working_hours=(("Mon-Sat", "08:00", "18:00"),),
        title=name,
    )
