"""Durable identities: the attempt's idempotency key, its parameter fingerprint, the attendee e-mail.

A caller who gives no e-mail gets a per-call address: Cal.com dedupes on (event type, start, attendee
e-mail), so one shared fallback address would let it hand call 688 the booking of call 687.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def idempotency_key(call_id: str, event_type_id: int, start: datetime) -> str:
    return f"{call_id}|{event_type_id}|{start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def fingerprint(name: str, email: str, phone: str | None, notes: str | None) -> str:
    """What makes a retry "the same request": a different name or e-mail under one key is refused."""
    material = "\x1f".join([name.strip().casefold(), email.strip().casefold(), phone or "", notes or ""])
    return hashlib.sha256(material.encode()).hexdigest()


def attendee_email(call_id: str, given: str | None, template: str, company_domain: str) -> str:
    if given:
        return given
    return template.format(call_id=_UNSAFE.sub("-", call_id), company_domain=company_domain)
