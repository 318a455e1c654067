"""Fault injection over HTTP: the real app, the Cal.com sandbox's fault switches, the four invariants.

Each scenario drives ``book_appointment`` the way Retell does while the sandbox misbehaves, asserts
what the caller must hear, and ends with ``Scene.check`` (see ``invariants.py``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tests.faults.scene import (
    Scene,
    appointments_with,
    attempts_of,
    eventually,
    haarschnitt,
    reconcile,
    service,
)

from voicebook.calcom.sandbox import Faults

BACKENDS = pytest.mark.parametrize("db_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
pytestmark = [pytest.mark.asyncio, BACKENDS]


async def _booked_once(scene: Scene, body: dict[str, object]) -> str:
    """The caller heard ``booked``, Cal.com holds exactly one booking, and it is recorded once."""
    assert body["status"] == "booked", body
    bookings = scene.env.sandbox.bookings
    assert len(bookings) == 1, [b.uid for b in bookings]
    uid = bookings[0].uid
    assert body["appointment"]["calcom_booking_uid"] == uid  # type: ignore[index]
    assert len(await appointments_with(scene.env.sessionmaker, uid)) == 1
    return uid


# --- ambiguous creates: read timeout, connection reset, 5xx --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "phase", "tries"),
    [
        pytest.param("read_timeout", "after", 1, id="read_timeout-after"),
        pytest.param("read_timeout", "before", 2, id="read_timeout-before"),
        pytest.param("connection_reset", "after", 1, id="connection_reset-after"),
        pytest.param("connection_reset", "before", 2, id="connection_reset-before"),
        pytest.param("http_error", "before", 2, id="http_500-before-then-success"),
        pytest.param("http_error", "after", 1, id="http_500-after"),
    ],
)
async def test_ambiguous_create_is_resolved_by_lookup(
    db_url: str, request: pytest.FixtureRequest, kind: str, phase: str, tries: int
) -> None:
    """ "after": Cal.com stored it, the lookup finds it; "before": nothing stored, one re-create."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject(kind, "bookings.create", phase=phase, times=1, status=500)  # type: ignore[arg-type]
        body = await scene.book(haarschnitt(10))
        await _booked_once(scene, body)
        (attempt,) = await attempts_of(env.sessionmaker)
        assert attempt.state == "recorded"
        assert attempt.tries == tries  # "after" never sends twice; "before" re-sends exactly once
        assert env.sandbox.faults.active() == []  # the fault really fired
        await scene.check()


async def test_ambiguous_create_and_failed_lookup_answers_in_progress_then_reconciler_records(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """Neither the create nor the lookup can tell: be honest (in_progress), never re-create blindly."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("http_error", "bookings.list", status=500, times=1)
        body = await scene.book(haarschnitt(11))
        assert body["status"] == "in_progress", body
        assert body["ok"] is False
        assert len(env.sandbox.bookings) == 1
        summary = await reconcile(env)
        assert summary.recorded == 1, summary.rows
        again = await scene.book(haarschnitt(11))
        uid = await _booked_once(scene, again)
        assert again["appointment"]["calcom_booking_uid"] == uid
        await scene.check()


async def test_ambiguous_create_with_nothing_stored_and_failed_lookup_never_books_twice(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """The request never reached Cal.com and the lookup failed too: the caller hears in_progress, no
    booking appears, and a retry within the lock does not re-send."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="before")
        env.sandbox.faults.inject("http_error", "bookings.list", status=500, times=1)
        body = await scene.book(haarschnitt(11, 30))
        assert body["status"] == "in_progress", body
        again = await scene.book(haarschnitt(11, 30))
        assert again["status"] == "in_progress", again
        assert env.sandbox.bookings == []
        summary = await reconcile(env)
        assert summary.still_open == 1, summary.rows  # nothing upstream yet: left open until the deadline
        await scene.check()


# --- 429 --------------------------------------------------------------------------------------------


async def test_rate_limited_create_is_retried_within_the_budget(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("rate_limit", "bookings.create", reset_seconds=1, times=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = await scene.book(haarschnitt(12))
        assert loop.time() - started >= 0.9  # it waited for Cal.com's X-RateLimit-Reset-Default
        await _booked_once(scene, body)
        (attempt,) = await attempts_of(env.sessionmaker)
        assert attempt.tries == 1  # a 429 is not a send: nothing was processed
        await scene.check()


async def test_rate_limit_beyond_the_budget_is_an_honest_upstream_error_and_a_retry_books_once(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("rate_limit", "bookings.create", reset_seconds=60, times=None)
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = await scene.book(haarschnitt(12, 30))
        assert loop.time() - started < 5  # a 60 s reset is not waited out with the caller on the line
        assert body["status"] == "upstream_error", body
        assert env.sandbox.bookings == []
        env.sandbox.faults.clear()
        again = await scene.book(haarschnitt(12, 30))
        await _booked_once(scene, again)
        await scene.check()


async def test_rate_limited_three_times_in_a_row_gives_up_after_the_budget(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("rate_limit", "bookings.create", reset_seconds=1, times=3)
        body = await scene.book(haarschnitt(13))
        assert body["status"] == "upstream_error", body
        assert env.sandbox.bookings == []
        again = await scene.book(haarschnitt(13))
        await _booked_once(scene, again)
        await scene.check()


# --- Cal.com webhooks racing our own commit ---------------------------------------------------------


async def test_webhook_arriving_before_our_commit_leaves_exactly_one_appointment(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """BOOKING_CREATED for our booking lands while our flow is still resolving it (not yet committed)."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("latency", "bookings.list", latency_seconds=1.0)
        flow = asyncio.create_task(scene.book(haarschnitt(14)))

        async def stored() -> bool:
            return bool(env.sandbox.bookings)

        await eventually(stored, what="the sandbox stored the booking")
        (booking,) = env.sandbox.bookings
        early = await scene.webhook("BOOKING_CREATED", booking)
        assert early.status_code == 200
        assert early.json() == {"status": "ours_pending"}
        assert not flow.done()
        body = await flow
        uid = await _booked_once(scene, body)
        late = await scene.webhook("BOOKING_CREATED", booking)  # a redelivery after our commit
        assert late.json() == {"status": "unchanged"}
        (appointment,) = await appointments_with(env.sessionmaker, uid)
        assert appointment.source == "voicebook"
        assert appointment.call_id == "call_687"
        await scene.check()


async def test_sandbox_delivered_webhook_racing_the_flow_converges(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """The sandbox itself delivers BOOKING_CREATED to the app while the create answer travels back."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        transport = env.client._transport
        sender = env.sandbox.webhooks
        sender.url, sender._transport = "http://voicebook.test/calcom/webhook", transport
        body = await scene.book(haarschnitt(14, 30))
        await env.sandbox.drain_webhooks()
        uid = await _booked_once(scene, body)
        assert [d["triggerEvent"] for d in sender.delivered] == ["BOOKING_CREATED"]
        (appointment,) = await appointments_with(env.sessionmaker, uid)
        assert appointment.source == "voicebook"
        await scene.check()


async def test_webhook_for_an_unresolved_attempt_waits_for_the_reconciler(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("connection_reset", "bookings.list", times=1)
        body = await scene.book(haarschnitt(15))
        assert body["status"] == "in_progress", body
        (booking,) = env.sandbox.bookings
        hook = await scene.webhook("BOOKING_CREATED", booking)
        assert hook.json() == {"status": "ours_pending"}  # not recorded as external: it is ours
        assert await appointments_with(env.sessionmaker, booking.uid) == []
        summary = await reconcile(env)
        assert summary.recorded == 1, summary.rows
        (appointment,) = await appointments_with(env.sessionmaker, booking.uid)
        assert appointment.call_id == "call_687"
        await scene.check()


# --- everything at once -----------------------------------------------------------------------------


async def test_chaos_many_callers_random_faults_then_reconciler(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """Twelve callers at once against seeded random faults; then a reconciler pass and one retry each."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults = Faults(seed=20240611)
        inject = env.sandbox.faults.inject
        inject("latency", "*", latency_seconds=0.0, latency_max_seconds=0.05, times=None)
        inject("read_timeout", "bookings.create", phase="after", probability=0.25, times=None)
        inject("connection_reset", "bookings.create", phase="before", probability=0.15, times=None)
        inject("http_error", "bookings.create", phase="after", status=502, probability=0.15, times=None)
        inject("http_error", "bookings.list", status=500, probability=0.3, times=None)
        inject("rate_limit", "bookings.create", reset_seconds=1, probability=0.1, times=None)
        callers = [
            (f"call_chaos_{n:02d}", f"+4917010000{n:02d}", 9 + n // 2, 30 * (n % 2)) for n in range(12)
        ]

        async def one(call_id: str, phone: str, hour: int, minute: int) -> dict[str, object]:
            return await scene.book(
                haarschnitt(hour, minute, f"Kunde {call_id}"), call_id=call_id, from_number=phone
            )

        first = await asyncio.gather(*(one(*c) for c in callers))
        assert {b["status"] for b in first} <= {"booked", "in_progress", "upstream_error"}, first
        env.sandbox.faults.clear()
        await reconcile(env)
        again = await asyncio.gather(*(one(*c) for c in callers))
        for (call_id, *_), before, after in zip(callers, first, again, strict=True):
            if before["status"] == "booked":
                assert after["appointment"] == before["appointment"], (call_id, before, after)
            assert after["status"] in ("booked", "in_progress"), (call_id, after)
        live = [b for b in env.sandbox.bookings if b.status != "cancelled"]
        per_call = [b.metadata["call_id"] for b in live]
        assert len(per_call) == len(set(per_call)), per_call  # never two bookings for one caller
        await scene.check()


async def test_reconciler_run_twice_and_concurrently_changes_nothing_more(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("http_error", "bookings.list", status=500, times=1)
        body = await scene.book(haarschnitt(16))
        assert body["status"] == "in_progress", body
        a, b = await asyncio.gather(reconcile(env), reconcile(env))
        assert a.recorded + b.recorded == 1, (a.rows, b.rows)
        c = await reconcile(env, ahead=timedelta(minutes=10))
        assert c.recorded == 0
        (booking,) = env.sandbox.bookings
        assert len(await appointments_with(env.sessionmaker, booking.uid)) == 1
        await scene.check()


async def test_servers_own_periodic_reconciler_finishes_an_in_progress_booking(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """No manual pass: the reconciler task the app runs in its lifespan records the booking."""
    async with service(db_url, reconcile_interval_seconds=0.2, attempt_lock_seconds=0.5) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("http_error", "bookings.list", status=500, times=1)
        body = await scene.book(haarschnitt(16, 30))
        assert body["status"] == "in_progress", body
        (booking,) = env.sandbox.bookings

        async def recorded() -> bool:
            return bool(await appointments_with(env.sessionmaker, booking.uid))

        await eventually(recorded, within=10, what="the periodic reconciler recorded the booking")
        again = await scene.book(haarschnitt(16, 30))
        assert again["status"] == "booked", again
        assert again["appointment"]["calcom_booking_uid"] == booking.uid
        assert len(env.sandbox.bookings) == 1
        await scene.check()


async def test_retry_after_a_reconciler_pass_that_could_not_look_resolves_the_booking(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """Cal.com stored the booking; our lookup and then the reconciler's lookup both failed. The reconciler
    releases the attempt (``locked_until`` NULL). The caller's retry must be able to take it over and find
    the booking, exactly as it would had the reconciler never looked (lock expired)."""
    async with service(db_url) as env:
        scene = Scene(env, request.node.name)
        env.sandbox.faults.inject("read_timeout", "bookings.create", phase="after")
        env.sandbox.faults.inject("http_error", "bookings.list", status=500, times=2)
        body = await scene.book(haarschnitt(17))
        assert body["status"] == "in_progress", body
        summary = await reconcile(env)
        assert summary.still_open == 1, summary.rows  # its lookup failed too; lock released
        (attempt,) = await attempts_of(env.sessionmaker)
        assert (attempt.state, attempt.locked_until) == ("unknown", None)
        again = await scene.book(haarschnitt(17))
        await _booked_once(scene, again)
        await scene.check()
