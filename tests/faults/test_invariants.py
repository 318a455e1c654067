"""The checker itself: each invariant fires on the end state it exists to catch (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.faults.invariants import INVARIANTS, Heard, Row, UpstreamBooking, evaluate, render_table

from voicebook.db.models import Appointment

OURS = UpstreamBooking("uid-a", "accepted", {"call_id": "call_a", "attempt_id": "att-a"}, None)
WHEN = datetime(2030, 1, 7, 9, tzinfo=UTC)


def appointment(uid: str, call_id: str = "call_a") -> Appointment:
    return Appointment(calcom_booking_uid=uid, call_id=call_id, start_at=WHEN)


def booked(call_id: str, uid: str) -> Heard:
    body = {"ok": True, "status": "booked", "appointment": {"calcom_booking_uid": uid}}
    return Heard(call_id, "/retell/functions/book_appointment", 200, body)


def broken(upstream: list[UpstreamBooking], appts: list[Appointment], heard: list[Heard]) -> set[str]:
    results, problems = evaluate(upstream, appts, heard)
    assert bool(problems) == (not all(results.values()))
    return {name for name, ok in results.items() if not ok}


def test_a_clean_end_state_holds_everything() -> None:
    assert broken([OURS], [appointment("uid-a")], [booked("call_a", "uid-a")]) == set()


def test_one_appointment_per_booking() -> None:
    one = INVARIANTS[0]
    assert broken([OURS], [], []) == {one}  # lost
    assert broken([OURS], [appointment("uid-a"), appointment("uid-a")], []) == {one}  # twice
    cancelled_by_us = UpstreamBooking("uid-a", "cancelled", OURS.metadata, "voicebook: orphan of attempt x")
    assert broken([cancelled_by_us], [], []) == set()
    cancelled_by_them = UpstreamBooking("uid-a", "cancelled", OURS.metadata, "host is ill")
    assert broken([cancelled_by_them], [], []) == set()
    external = UpstreamBooking("uid-x", "accepted", {}, None)
    assert broken([external], [], []) == set()  # not ours to account for


def test_no_appointment_without_a_booking() -> None:
    assert broken([], [appointment("uid-ghost")], []) == {INVARIANTS[1]}


def test_nobody_hears_someone_elses_booking() -> None:
    assert broken([OURS], [appointment("uid-a")], [booked("call_b", "uid-a")]) == {INVARIANTS[2]}
    assert INVARIANTS[2] in broken([OURS], [appointment("uid-a")], [booked("call_a", "uid-zzz")])


def test_no_5xx() -> None:
    heard = [Heard(None, "/calcom/webhook", 500, None)]
    assert broken([OURS], [appointment("uid-a")], heard) == {INVARIANTS[3]}


def test_table_marks() -> None:
    row = Row(test_outcome="failed")
    row.invariants.update({INVARIANTS[0]: True, INVARIANTS[1]: False})
    lines = render_table({"scenario_x": row})
    (line,) = [entry for entry in lines if entry.startswith("scenario_x")]
    assert "✓" in line
    assert "✗" in line
    assert "–" in line
    assert line.endswith("failed")
