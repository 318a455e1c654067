"""Issue 13, the property-based stateful test: random interleavings of the appointment's whole life.

Three callers (two with a signed E.164 caller ID, one ``anonymous``) book, retry (the same request
again), cancel, reschedule and rebook over signed HTTP, while Cal.com (the sandbox) cancels or moves
bookings by itself (with or without delivering its webhook) and reconciler passes run. After every step:

- nobody sees or changes an appointment they do not own: an answer names (uid, options, spoken time)
  only appointments of the asking call's owner set, and every other caller's rows are unchanged;
- never two live local appointments for one uid;
- no answer ``booked`` for a booking that is not live in the sandbox at that moment;
- after a reconciler pass, the live local appointments are exactly the live sandbox bookings.

One service per database serves every example; each example starts from empty booking tables and an
empty sandbox, and has at most ``MAX_STEPS`` steps, so 200 examples per database stay within the time budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from tests.e2e.harness import CALCOM_SECRET, Env, running_service
from tests.faults.scene import weekday_at

from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.reconcile.driver import reconcile_once
from voicebook.booking.tenancy import e164_or_none
from voicebook.bootstrap import booking_policy, sandbox_gateway
from voicebook.calcom.sandbox import SIGNATURE_HEADER, StoredBooking, sign
from voicebook.calcom.sandbox.render import webhook_body
from voicebook.db.base import utc_now
from voicebook.db.models import (
    Appointment,
    AppointmentDuplicateArchive,
    BookingAttempt,
    Call,
    Customer,
    GuardEvent,
)

BERLIN = ZoneInfo("Europe/Berlin")
CALLERS = ("+491701111111", "+491702222222", "anonymous")
SLOTS = ((10, 0), (10, 30), (11, 0), (11, 30))
# ``VOICEBOOK_STATEFUL_EXAMPLES=2000 VOICEBOOK_STATEFUL_SEED=random`` for a deeper, randomised local run
EXAMPLES = int(os.environ.get("VOICEBOOK_STATEFUL_EXAMPLES", "200"))
DERANDOMIZE = os.environ.get("VOICEBOOK_STATEFUL_SEED", "fixed") != "random"
MAX_STEPS = 6  # short examples keep 200 per database within the time budget
STATE_TABLES = (GuardEvent, AppointmentDuplicateArchive, Appointment, BookingAttempt, Call, Customer)


# --- the operations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    caller: int
    slot: int


@dataclass(frozen=True)
class Retry:
    """Send a caller's last request again (None: the last request anyone sent); ``twice``: two copies
    at once, as when Retell retries while the first is still in flight."""

    caller: int | None
    twice: bool = False


@dataclass(frozen=True)
class Cancel:
    caller: int
    slot: int | None


@dataclass(frozen=True)
class Reschedule:
    caller: int
    slot: int | None
    to: int


@dataclass(frozen=True)
class NewCall:
    caller: int


@dataclass(frozen=True)
class CalcomCancel:
    pick: int
    webhook: bool


@dataclass(frozen=True)
class CalcomMove:
    pick: int
    to: int
    webhook: bool


@dataclass(frozen=True)
class Reconcile:
    pass


FAULTS = (  # one ambiguous or failed answer from Cal.com, for the next request to that endpoint
    {"kind": "http_error", "endpoint": "bookings.create", "phase": "after", "status": 503},
    {"kind": "read_timeout", "endpoint": "bookings.create", "phase": "after"},
    {"kind": "connection_reset", "endpoint": "bookings.reschedule", "phase": "after"},
    {"kind": "read_timeout", "endpoint": "bookings.cancel", "phase": "after"},
    {"kind": "http_error", "endpoint": "bookings.cancel", "phase": "before", "status": 500},
)


@dataclass(frozen=True)
class Flaky:
    fault: int


callers = st.integers(0, len(CALLERS) - 1)
slots = st.integers(0, len(SLOTS) - 1)
book = st.builds(Book, callers, slots)
retry = st.builds(Retry, st.none() | callers, st.booleans())
calcom_cancel = st.builds(CalcomCancel, st.integers(0, 7), st.booleans())
WEIGHTED = (  # repeated entries are drawn more often: booking, retrying and Cal.com's own changes
    book,
    book,
    book,
    retry,
    retry,
    retry,
    st.builds(Cancel, callers, st.none() | slots),
    st.builds(Reschedule, callers, st.none() | slots, slots),
    st.builds(Reschedule, callers, st.none() | slots, slots),
    st.builds(NewCall, callers),
    calcom_cancel,
    calcom_cancel,
    st.builds(CalcomMove, st.integers(0, 7), slots, st.booleans()),
    st.just(Reconcile()),
    st.just(Reconcile()),
    st.builds(Flaky, st.integers(0, len(FAULTS) - 1)),
)
OPERATIONS = st.sampled_from(WEIGHTED).flatmap(lambda strategy: strategy)


# --- one example ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    uid: str
    status: str
    start: datetime
    call_id: str | None
    phone: str | None


@dataclass
class Caller:
    number: str
    call_id: str
    last: tuple[str, dict[str, Any]] | None = None

    @property
    def e164(self) -> str | None:
        return e164_or_none(self.number)

    def owns(self, row: Row) -> bool:
        """The ownership contract: booked in this call, or the customer's phone is the signed caller ID."""
        return row.call_id == self.call_id or (self.e164 is not None and row.phone == self.e164)


@dataclass
class Example:
    env: Env
    starts: list[str]
    callers: list[Caller]
    calls: Iterator[int]
    gateway: CalendarGateway
    policy: BookingPolicy
    log: list[str] = field(default_factory=list)
    current: dict[int, Row] = field(default_factory=dict)  # the rows after the last step
    last_caller: int | None = None
    spent: dict[str, float] = field(default_factory=dict)

    def slot(self, index: int) -> str:
        return self.starts[index]

    async def rows(self) -> dict[int, Row]:
        async with self.env.sessionmaker() as session:
            result = await session.execute(
                select(Appointment, Customer.phone).outerjoin(
                    Customer, Customer.id == Appointment.customer_id
                )
            )
            return {
                a.id: Row(a.id, a.calcom_booking_uid, a.status, a.start_at, a.call_id, phone)
                for a, phone in result.all()
            }

    def live_upstream(self) -> set[str]:
        return {b.uid for b in self.env.sandbox.bookings if b.status in ("accepted", "pending")}

    async def run(self, op: object) -> None:
        self.log.append(repr(op))
        began = time.perf_counter()
        if isinstance(op, NewCall):
            caller = self.callers[op.caller]
            caller.call_id, caller.last = f"call_{next(self.calls)}", None
        elif isinstance(op, Book | Retry | Cancel | Reschedule):
            await self.caller_step(op)
        elif isinstance(op, Flaky):
            self.env.sandbox.faults.inject(**FAULTS[op.fault])  # type: ignore[arg-type]
        elif isinstance(op, CalcomCancel | CalcomMove):
            if await self.calcom_step(op):
                self.current = await self.rows()
        else:
            # A full comparison pass (every upcoming appointment, none skipped as recently compared): the
            # property below is what such a pass guarantees; the server's passes reach it within
            # resync_after_seconds.
            await reconcile_once(
                self.env.sessionmaker,
                self.gateway,
                self.policy,
                owner="stateful-test",
                resync_after_seconds=0,
                sync_batch=1000,
            )
            self.current = await self.rows()
            live_local = {r.uid for r in self.current.values() if r.status == "booked"}
            assert live_local == self.live_upstream(), ("after reconcile", self.current, self.live_upstream())
        live = [r.uid for r in self.current.values() if r.status == "booked"]
        assert len(live) == len(set(live)), ("two live appointments for one uid", live)
        kind = type(op).__name__
        self.spent[kind] = self.spent.get(kind, 0.0) + time.perf_counter() - began

    async def caller_step(self, op: Book | Retry | Cancel | Reschedule) -> None:
        if isinstance(op, Retry):
            index = self.last_caller if op.caller is None else op.caller
            if index is None or self.callers[index].last is None:
                return
            caller = self.callers[index]
            function, args = caller.last  # type: ignore[misc]
        else:
            caller = self.callers[op.caller]
            function, args = self.request(op)
        self.last_caller = self.callers.index(caller)
        caller.last = (function, args)
        before = self.current
        armed = bool(self.env.sandbox.faults.active())
        copies = 2 if isinstance(op, Retry) and op.twice else 1
        responses = await asyncio.gather(
            *[
                self.env.call(function, args, call_id=caller.call_id, from_number=caller.number)
                for _ in range(copies)
            ]
        )
        after = self.current = await self.rows()
        live = self.live_upstream()
        for response in responses:
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            uid = (body.get("appointment") or {}).get("calcom_booking_uid")
            self.log.append(f"  -> {body['status']} {uid}")
            assert armed or body["status"] != "upstream_error", body
            self.check_owned_answer(caller, args, body, after)
            if body["status"] == "booked":
                assert uid in live, ("told booked, not live in Cal.com", body)
        self.check_others_unchanged(caller, before, after)

    def request(self, op: Book | Cancel | Reschedule) -> tuple[str, dict[str, Any]]:
        if isinstance(op, Book):
            args = {"service": "Haarschnitt", "start": self.slot(op.slot), "name": f"Kunde {op.caller}"}
            return "book_appointment", args
        if isinstance(op, Cancel):
            return "cancel_appointment", {} if op.slot is None else {"start": self.slot(op.slot)}
        args = {"new_start": self.slot(op.to)}
        if op.slot is not None:
            args["start"] = self.slot(op.slot)
        return "reschedule_appointment", args

    def check_owned_answer(
        self, caller: Caller, args: dict[str, Any], body: dict[str, Any], rows: dict[int, Row]
    ) -> None:
        by_uid = {r.uid: r for r in rows.values()}
        uid = (body.get("appointment") or {}).get("calcom_booking_uid")
        if uid is not None:
            assert uid in by_uid, ("answer names an unknown uid", body)
            assert caller.owns(by_uid[uid]), ("answer names another caller's appointment", body)
        own_starts = {r.start for r in rows.values() if caller.owns(r)}
        for option in body.get("options") or []:
            assert datetime.fromisoformat(option) in own_starts, ("option not the caller's", body)
        offered = (body.get("alternatives") or []) + (body.get("slots") or [])
        said = {datetime.fromisoformat(t) for t in offered}
        asked = [args[k] for k in ("start", "new_start") if k in args]
        said |= {datetime.fromisoformat(v).replace(tzinfo=BERLIN) for v in asked}
        foreign = {r.start for r in rows.values() if not caller.owns(r)} - own_starts - said
        message = body.get("message") or ""
        for start in foreign:
            local = start.astimezone(BERLIN)
            assert f"{local.hour}:{local.minute:02d} Uhr" not in message, ("names a foreign time", body)
        text = json.dumps(body)
        for row in rows.values():
            if not caller.owns(row):
                assert row.uid not in text, ("names a foreign uid", body)

    def check_others_unchanged(self, caller: Caller, before: dict[int, Row], after: dict[int, Row]) -> None:
        for row_id, row in before.items():
            if row.call_id is None or caller.owns(row):
                continue
            assert after.get(row_id) == row, ("another caller's appointment changed", row, after.get(row_id))

    async def calcom_step(self, op: CalcomCancel | CalcomMove) -> bool:
        """Change a booking in Cal.com itself; True when a webhook told the service about it."""
        sandbox = self.env.sandbox
        live = sorted(
            (b for b in sandbox.bookings if b.status in ("accepted", "pending")), key=lambda b: b.id
        )
        if not live:
            return False
        booking = live[op.pick % len(live)]
        if isinstance(op, CalcomCancel):
            sandbox.engine.cancel(booking.uid, "cancelled by the salon")
            changed, trigger = booking, "BOOKING_CANCELLED"
        else:
            target = datetime.fromisoformat(self.slot(op.to)).replace(tzinfo=BERLIN)
            if target == booking.start or any(b.start == target for b in live):
                return False
            changed, _ = sandbox.engine.reschedule(booking.uid, target, "moved by the salon")
            trigger = "BOOKING_RESCHEDULED"
        self.log.append(f"  calcom {trigger} {booking.uid} -> {changed.uid}")
        if op.webhook:
            extra = {"rescheduleUid": booking.uid} if changed is not booking else None
            await self.webhook(trigger, changed, extra)
        return op.webhook

    async def webhook(self, trigger: str, booking: StoredBooking, extra: dict[str, Any] | None) -> None:
        """Deliver Cal.com's webhook as the sandbox would (signed over the raw body)."""
        sandbox = self.env.sandbox
        event_type = sandbox.engine.event_type(booking.event_type_id)
        event = webhook_body(trigger, booking, event_type, sandbox.clock.now(), extra)
        raw = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, CALCOM_SECRET)}
        response = await self.env.client.post("/calcom/webhook", content=raw, headers=headers)
        assert response.status_code < 500, response.text


async def reset(env: Env) -> None:
    async with env.sessionmaker() as session, session.begin():
        for table in STATE_TABLES:
            await session.execute(delete(table))
    env.sandbox.engine.clear_bookings()
    env.sandbox.faults.clear()


def test_lifecycle_interleavings_keep_every_guarantee(db_url: str) -> None:
    runner = asyncio.Runner()
    service = running_service(db_url, reconcile_interval_seconds=0, log_level="WARNING")
    env = runner.run(service.__aenter__())
    gateway, http = sandbox_gateway(env.sandbox)
    # the reconciler's clock runs 5 minutes ahead, so the flow's 30 s attempt locks count as expired
    policy = dataclasses.replace(booking_policy(env.settings), clock=lambda: utc_now() + timedelta(minutes=5))
    starts = [weekday_at(h, m) for h, m in SLOTS]
    counter = iter(range(10**9))
    timings: list[tuple[float, int]] = []
    spent: dict[str, float] = {"reset": 0.0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(OPERATIONS, min_size=1, max_size=MAX_STEPS))
    # found by this test: a retried booking replayed "booked" after the salon cancelled it in Cal.com
    @example([Book(0, 0), CalcomCancel(0, webhook=False), Retry(0)])
    @example([Book(2, 1), Retry(2, twice=True), Cancel(2, None), Book(2, 1), Retry(None, twice=True)])
    def interleaving(operations: list[object]) -> None:
        async def one_example() -> None:
            began = time.perf_counter()
            await reset(env)
            spent["reset"] += time.perf_counter() - began
            run = Example(
                env,
                starts,
                [Caller(n, f"call_{next(counter)}") for n in CALLERS],
                counter,
                gateway,
                policy,
            )
            try:
                for op in operations:
                    await run.run(op)
            except AssertionError as exc:
                raise AssertionError("\n".join([str(exc), *run.log])) from exc
            for kind, seconds in run.spent.items():
                spent[kind] = spent.get(kind, 0.0) + seconds

        began = time.perf_counter()
        runner.run(one_example())
        timings.append((time.perf_counter() - began, len(operations)))

    try:
        interleaving()
        assert len(timings) >= EXAMPLES  # every database really ran its examples
    finally:
        slow = sorted(timings, reverse=True)[:5]
        print(f"examples={len(timings)} total={sum(t for t, _ in timings):.1f}s slowest={slow}")
        print({k: round(v, 1) for k, v in spent.items()})
        runner.run(http.aclose())
        runner.run(service.__aexit__(None, None, None))
        runner.close()
