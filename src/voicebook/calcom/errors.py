"""Cal.com failures, each also a ``booking.errors`` type so the domain never imports this package.

The split that matters to the domain is *did anything happen?*:

* ``SlotUnavailable`` / ``CalcomRejected`` — Cal.com answered with a refusal; nothing was booked.
* ``CalcomUnavailable`` (and ``RateLimited``) — the request never took effect; safe to retry.
* ``OutcomeUnknown`` — a mutating request may have reached Cal.com; resolve by lookup, never resend.
  Every 5xx on a create, cancel or reschedule is one, 503 included: a proxy or edge can answer
  502/503/504 while Cal.com goes on and stores the change (issue 13, case 4).

Error messages are built only from our endpoint names and Cal.com's response text, and every
message passes through :func:`redact` so an API key echoed anywhere cannot leak into logs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from voicebook.booking import errors as domain

_MAX_MESSAGE_CHARS = 300

# A 400 whose message says the slot is taken or not offered. Cal.com has no machine-readable code
# for these (errors.service.ts maps core error codes to prose), so matching the prose is all we have.
SLOT_UNAVAILABLE_MARKERS = (
    "already has booking",
    "not available",
    "attempting to book a meeting in the past",
    "can't be booked at the",
)
# Mechanism B's unique-constraint race; the body shape differs by Cal.com version
# (tests/contract/data/BEHAVIOUR.md §1).
CONFLICT_MARKER = "booking_conflict"


class CalcomError(domain.CalendarError):
    """Tags an error as raised by the Cal.com adapter (for logs and metrics)."""


class SlotUnavailable(CalcomError, domain.SlotUnavailable):
    """Cal.com refused because the slot is taken, not offered, or lost a race (409)."""


class CalcomRejected(CalcomError, domain.CalendarRejected):
    """Any other 4xx: nothing was booked, and resending the same request will not help."""


class CalcomUnavailable(CalcomError, domain.CalendarUnavailable):
    """Nothing took effect: nothing was sent (connection refused, DNS), a 5xx or timeout on a read,
    or an unreadable read answer."""


class RateLimited(CalcomUnavailable, domain.RateLimited):
    """429 after our short in-call retries; ``reset_seconds`` comes from Cal.com's headers."""


class OutcomeUnknown(CalcomError, domain.OutcomeUnknown):
    """A mutating request may have taken effect (timeout/reset after sending, 5xx, unreadable 2xx)."""


def redact(text: str, secret: str | None) -> str:
    """Scrub the key and bound the length, because messages end up in logs and API answers."""
    if secret:
        text = text.replace(secret, "***")
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return text


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """Code and message from either error shape Cal.com is known to send."""

    code: str
    message: str
    raw: str


def parse_error_body(status: int, content: bytes) -> ErrorBody:
    """Read the Nest envelope, the bare ``{statusCode, message}`` body, or fall back to text."""
    raw = content.decode("utf-8", errors="replace")
    code, message = f"HTTP_{status}", raw.strip() or httpx.codes.get_reason_phrase(status)
    try:
        body = json.loads(raw)
    except ValueError:
        return ErrorBody(code, message, raw)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = _message_text(err.get("message"), message)
        else:
            if isinstance(err, str) and err:
                code = err
            message = _message_text(body.get("message"), message)
    return ErrorBody(code, message, raw)


def _message_text(value: object, default: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value:
        return "; ".join(str(v) for v in value)
    return default


def reset_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """When to try again: ``Retry-After`` if sent, else the largest ``X-RateLimit-Reset-*``."""
    retry_after = headers.get("retry-after")
    if retry_after:
        value = _parse_retry_after(retry_after, now or datetime.now(UTC))
        if value is not None:
            return value
    resets = []
    for name, header in headers.items():
        if name.lower().startswith("x-ratelimit-reset"):
            try:
                seconds = float(header)
            except ValueError:
                continue
            if math.isfinite(seconds):
                resets.append(max(seconds, 0.0))
    return max(resets) if resets else None


def _parse_retry_after(value: str, now: datetime) -> float | None:
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def error_for_response(
    response: httpx.Response, *, endpoint: str, mutating: bool, secret: str | None
) -> CalcomError:
    """Map a non-2xx answer; every 5xx on a mutating call is ambiguous (``OutcomeUnknown``).

    The one exception is a body naming ``booking_conflict``: Cal.com's own unique-key refusal, which
    some versions send as a bare 500 — it proves nothing was stored.
    """
    status = response.status_code
    body = parse_error_body(status, response.content)
    text = redact(f"Cal.com {endpoint}: {status} {body.code}: {body.message}", secret)
    lowered = body.message.lower()
    if status == 429:
        return RateLimited(text, reset_seconds(response.headers))
    if status == 409 or CONFLICT_MARKER in body.raw.lower():
        return SlotUnavailable(text)
    if status == 400 and any(marker in lowered for marker in SLOT_UNAVAILABLE_MARKERS):
        return SlotUnavailable(text)
    if 400 <= status < 500:
        return CalcomRejected(status, body.code, redact(body.message, secret))
    if mutating:
        return OutcomeUnknown(text)
    return CalcomUnavailable(text)


# Failures raised before a single byte of the request left this process.
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def error_for_transport(
    exc: httpx.TransportError, *, endpoint: str, mutating: bool, secret: str | None
) -> CalcomError:
    """A transport failure is ambiguous for mutating calls unless nothing was sent."""
    kind = type(exc).__name__
    detail = redact(f"Cal.com {endpoint}: {kind}: {exc}", secret)
    if isinstance(exc, NOTHING_SENT) or not mutating:
        return CalcomUnavailable(detail)
    return OutcomeUnknown(f"{detail} (the request may have taken effect)")


def malformed_response(endpoint: str, problem: str, *, mutating: bool, secret: str | None) -> CalcomError:
    """A 2xx we cannot read: for writes the change may have happened, for reads nothing did."""
    text = redact(f"Cal.com {endpoint}: malformed response: {problem}", secret)
    return OutcomeUnknown(text) if mutating else CalcomUnavailable(text)
