"""``voicebook tenants sync``: a company's services compared with the event types its Cal.com has.

Why: a service whose ``event_type_id`` does not exist in the company's account (a typo, an event type
deleted in Cal.com, an ID from the wrong account) fails only when a caller tries to book it. Listing the
account's event types (``GET /v2/event-types``, or the team's) finds that before any caller does, and an
event type that no service books yet can be written out as a ready tenants entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import yaml

from voicebook.calcom.schemas import EventTypeOutput


@dataclass(frozen=True)
class ServiceLine:
    name: str
    event_type_id: int
    duration_minutes: int


@dataclass
class SyncReport:
    ok: list[ServiceLine] = field(default_factory=list)
    missing: list[ServiceLine] = field(default_factory=list)  # the event type does not exist
    wrong_length: list[tuple[ServiceLine, int]] = field(default_factory=list)  # (service, Cal.com length)
    unused: list[EventTypeOutput] = field(default_factory=list)  # in Cal.com, booked by no service

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.wrong_length)

    def lines(self, slug: str) -> list[str]:
        out = [f"{slug}: {len(self.ok)} service(s) match Cal.com"]
        out += [f"  MISSING  {s.name}: event type {s.event_type_id} does not exist" for s in self.missing]
        out += [
            f"  LENGTH   {s.name}: {s.duration_minutes} min in the tenants file, {length} min in Cal.com"
            for s, length in self.wrong_length
        ]
        out += [
            f"  UNUSED   event type {e.id} ({e.title or e.slug}, {e.length_in_minutes} min)"
            for e in self.unused
        ]
        return out


def compare(services: list[ServiceLine], event_types: list[EventTypeOutput]) -> SyncReport:
    by_id = {e.id: e for e in event_types}
    report = SyncReport()
    for service in services:
        found = by_id.get(service.event_type_id)
        if found is None:
            report.missing.append(service)
        elif found.length_in_minutes is not None and found.length_in_minutes != service.duration_minutes:
            report.wrong_length.append((service, found.length_in_minutes))
        else:
            report.ok.append(service)
    booked = {s.event_type_id for s in services}
    report.unused = [e for e in event_types if e.id not in booked]
    return report


def tenants_entry(slug: str, unused: list[EventTypeOutput]) -> str:
    """YAML for the services of ``unused`` event types, to paste under the company's ``services:``."""
    services = [
        {
            "name": e.title or e.slug or f"event-type-{e.id}",
            "event_type_id": e.id,
            "duration_minutes": e.length_in_minutes or 30,
        }
        for e in unused
    ]
    header = f"# services of {slug} for event types no service books yet (tenants sync)\n"
    return header + yaml.safe_dump({"services": services}, sort_keys=False, allow_unicode=True)


async def unknown_event_types(
    lists: Callable[[int], Awaitable[list[EventTypeOutput] | None]],
    companies: list[tuple[int, str, list[ServiceLine]]],
) -> tuple[list[str], list[str]]:
    """Warnings for services whose event type does not exist, and notes for accounts not reachable.

    ``lists(company_id)`` gives the company's event types (None: no account to ask). Best effort: a
    company whose Cal.com cannot be reached is noted, never an error, since loading must not depend on it.
    """
    warnings: list[str] = []
    notes: list[str] = []
    for company_id, slug, services in companies:
        try:
            event_types = await lists(company_id)
        except Exception as exc:  # any failure to reach Cal.com only skips the check
            notes.append(f"{slug}: event types not checked ({type(exc).__name__})")
            continue
        if event_types is None:
            continue
        for service in compare(services, event_types).missing:
            warnings.append(
                f"{slug}: service {service.name!r}: event type {service.event_type_id} "
                "does not exist in its Cal.com"
            )
    return warnings, notes
