"""The four invariants every fault scenario must leave true, and the table they are recorded in.

1. every Cal.com (sandbox) booking carrying one of our ``metadata.attempt_id`` values — live, or
   cancelled by us — has exactly one local appointment, or was cancelled by us;
2. no local appointment without a sandbox booking of the same uid;
3. no caller was told ``booked`` for a uid that is not theirs (the sandbox booking's ``metadata.call_id``
   is the call that heard it);
4. no 5xx was answered, to Retell or to Cal.com's webhook.

A scenario collects what its callers heard in a ``Transcript`` and calls ``check``: the results go into
the module-level ``RESULTS`` table (printed by ``conftest.pytest_terminal_summary``) and a broken
invariant fails the test with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.calcom.sandbox import Sandbox
from voicebook.db.models import Appointment

INVARIANTS = ("(1)", "(2)", "(3)", "(4)")
LEGEND = (
    "(1) every sandbox booking with our attempt_id: exactly one appointment, or cancelled by us",
    "(2) no appointment without a sandbox booking",
    "(3) nobody told `booked` for a uid that is not theirs",
    "(4) no 5xx answered",
)
# Reasons our own code gives Cal.com when it cancels: the reconciler's orphan clean-up and the caller's
# cancel_appointment. A booking cancelled with anything else was cancelled by someone else.
OUR_CANCEL_REASONS = ("voicebook:", "Cancelled by the caller on the phone")


@dataclass
class Row:
    invariants: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(INVARIANTS))
    problems: list[str] = field(default_factory=list)
    test_outcome: str | None = None


# scenario id (test node name, with its parameters) → results; filled in test order.
RESULTS: dict[str, Row] = {}


@dataclass(frozen=True)
class UpstreamBooking:
    """The fields of a sandbox booking the invariants need, from the object or the control API's JSON."""

    uid: str
    status: str
    metadata: dict[str, str]
    cancellation_reason: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpstreamBooking:
        return cls(
            str(data["uid"]),
            str(data["status"]),
            {k: str(v) for k, v in (data.get("metadata") or {}).items()},
            data.get("cancellationReason"),
        )

    @property
    def cancelled_by_us(self) -> bool:
        reason = self.cancellation_reason or ""
        return self.status == "cancelled" and reason.startswith(OUR_CANCEL_REASONS)


def upstream_of(sandbox: Sandbox) -> list[UpstreamBooking]:
    return [
        UpstreamBooking(b.uid, b.status, dict(b.metadata), b.cancellation_reason) for b in sandbox.bookings
    ]


@dataclass(frozen=True)
class Heard:
    """One HTTP answer of the scenario: who asked (a Retell call id; None for a webhook), what came back."""

    call_id: str | None
    path: str
    status_code: int
    body: dict[str, Any] | None

    @property
    def booked_uid(self) -> str | None:
        if self.body is None or self.body.get("status") != "booked":
            return None
        appointment = self.body.get("appointment") or {}
        uid = appointment.get("calcom_booking_uid")
        return str(uid) if uid else ""


@dataclass
class Transcript:
    """Everything answered during one scenario."""

    heard: list[Heard] = field(default_factory=list)

    def add(self, response: httpx.Response, call_id: str | None) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else None
        self.heard.append(Heard(call_id, response.request.url.path, response.status_code, body))
        return body


async def appointments_of(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Appointment]:
    async with sessionmaker() as session:
        return list((await session.execute(select(Appointment))).scalars().all())


def evaluate(
    upstream: Sequence[UpstreamBooking], appointments: Sequence[Appointment], heard: Iterable[Heard]
) -> tuple[dict[str, bool], list[str]]:
    """The invariants over one end state; (results by invariant, human-readable problems)."""
    problems: dict[str, list[str]] = {name: [] for name in INVARIANTS}
    by_uid: dict[str, list[Appointment]] = {}
    for appointment in appointments:
        by_uid.setdefault(appointment.calcom_booking_uid, []).append(appointment)
    bookings = {b.uid: b for b in upstream}

    i1, i2, i3, i4 = INVARIANTS
    for booking in upstream:
        if not booking.metadata.get("attempt_id"):
            continue
        if booking.status == "cancelled" and not booking.cancelled_by_us:
            continue  # cancelled in Cal.com by someone else: not ours to account for
        count = len(by_uid.get(booking.uid, []))
        if count != 1 and not booking.cancelled_by_us:
            problems[i1].append(
                f"booking {booking.uid} (attempt {booking.metadata['attempt_id']}, {booking.status}) "
                f"has {count} local appointments"
            )
    for uid, rows in by_uid.items():
        if uid not in bookings:
            problems[i2].append(f"appointment(s) {[a.id for a in rows]} for {uid}: no such Cal.com booking")
    for h in heard:
        uid = h.booked_uid
        if uid is None:
            continue
        booking = bookings.get(uid)
        if booking is None:
            problems[i3].append(f"{h.call_id} was told booked for {uid!r}, which Cal.com does not hold")
        elif booking.metadata.get("call_id") != h.call_id:
            problems[i3].append(
                f"{h.call_id} was told booked for {uid}, made for call {booking.metadata.get('call_id')}"
            )
        elif booking.status == "cancelled" and not booking.cancelled_by_us:
            problems[i3].append(f"{h.call_id} was told booked for {uid}, cancelled in Cal.com")
    for h in heard:
        if h.status_code >= 500:
            problems[i4].append(f"{h.path} ({h.call_id}) answered {h.status_code}")
    results = {name: not found for name, found in problems.items()}
    return results, [f"invariant {name}: {p}" for name, found in problems.items() for p in found]


def record(scenario: str, results: dict[str, bool], problems: list[str]) -> None:
    row = RESULTS.setdefault(scenario, Row())
    row.invariants.update(results)
    row.problems = problems


async def check(
    scenario: str,
    upstream: Sequence[UpstreamBooking],
    sessionmaker: async_sessionmaker[AsyncSession],
    transcript: Transcript,
) -> None:
    """Evaluate, record into ``RESULTS``, and fail the scenario if any invariant is broken."""
    results, problems = evaluate(upstream, await appointments_of(sessionmaker), transcript.heard)
    record(scenario, results, problems)
    assert not problems, "invariants broken:\n" + "\n".join(problems)


def render_table(rows: dict[str, Row]) -> list[str]:
    """The scenario × invariant table, one string per line."""
    headers = ["scenario", *INVARIANTS, "test"]
    body = []
    for name, row in rows.items():
        marks = ["✓" if ok else "✗" if ok is False else "–" for ok in row.invariants.values()]
        body.append([name, *marks, row.test_outcome or "?"])
    widths = [max(len(str(line[i])) for line in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [str(c).center(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    out = [*LEGEND, "", line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(cells) for cells in body)
    for name, row in rows.items():
        for problem in row.problems:
            out.append(f"  {name}: {problem}")
    return out
