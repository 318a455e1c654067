"""The sandbox's booking index answers exactly what a scan over every stored booking answers.

Each reference below is the scan the engine did before the index existed; random operations
(creates with and without availability, cancels, reschedules, clearing) must never make the two differ.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from voicebook.calcom.sandbox import Sandbox, SandboxClock, SandboxEventType, SandboxHost, StoredBooking
from voicebook.calcom.sandbox.engine import BookingEngine
from voicebook.calcom.sandbox.inputs import ApiError, CreateInput
from voicebook.calcom.sandbox.slots import available_starts, candidate_starts, free_hosts, is_offered

NOW = datetime(2030, 3, 4, 7, 0, tzinfo=UTC)
HOSTS = [SandboxHost(n, f"Host {n}", f"h{n}@x.test", f"h{n}", "UTC") for n in range(1, 5)]
ROUND_ROBIN = SandboxEventType(
    id=1, slug="rr", length_minutes=30, scheduling_type="roundRobin", hosts=HOSTS[:3], time_zone="UTC"
)
# Shares host 3 with the round robin, with another length and step, so overlaps cross event types.
LONG = SandboxEventType(
    id=2, slug="long", length_minutes=45, slot_interval_minutes=15, hosts=HOSTS[2:], time_zone="UTC"
)
PENDING = SandboxEventType(
    id=3, slug="pending", length_minutes=60, requires_confirmation=True, hosts=HOSTS[:1], time_zone="UTC"
)
EVENT_TYPES = (ROUND_ROBIN, LONG, PENDING)
DAY = datetime(2030, 3, 5, 10, 0, tzinfo=UTC)


def _scan_offered(et: SandboxEventType, start: datetime, now: datetime) -> bool:
    if start < now + timedelta(minutes=et.minimum_notice_minutes):
        return False
    return start in candidate_starts(et, start, start + timedelta(seconds=1))


def _scan_available(
    et: SandboxEventType, start: datetime, end: datetime, now: datetime, bookings: list[StoredBooking]
) -> list[datetime]:
    length = timedelta(minutes=et.length_minutes)
    notice = now + timedelta(minutes=et.minimum_notice_minutes)
    return [
        s for s in candidate_starts(et, start, end) if s >= notice and free_hosts(et, s, s + length, bookings)
    ]


def _scan_load(bookings: Iterable[StoredBooking], host_id: int) -> int:
    return sum(1 for b in bookings if b.host_id == host_id and b.blocks())


def _request(rng: random.Random, et: SandboxEventType, n: int) -> CreateInput:
    person = rng.randrange(4)  # few people, so mechanism A replays happen
    return CreateInput(
        start=DAY + timedelta(minutes=15 * rng.randrange(24)),
        event_type_id=et.id,
        event_type_slug=None,
        name=f"Caller {n}",
        email=f"p{person}@x.test",
        time_zone="UTC",
        language="en",
        phone_number=None,
    )


def _assert_consistent(engine: BookingEngine, rng: random.Random) -> None:
    rows = engine.bookings
    for _ in range(5):
        s = DAY + timedelta(minutes=5 * rng.randrange(-20, 90))
        e = s + timedelta(minutes=5 * rng.randrange(0, 30))
        assert engine.overlapping(s, e) == sorted(
            (b for b in rows if b.overlaps(s, e)), key=lambda b: b.start
        )
        assert engine.starting_from(s) == sorted((b for b in rows if b.start >= s), key=lambda b: b.start)
    for et in EVENT_TYPES:
        start, end = DAY - timedelta(hours=2), DAY + timedelta(hours=9)
        window = engine.overlapping(start, end + timedelta(minutes=et.length_minutes))
        assert available_starts(et, start, end, NOW, window) == _scan_available(et, start, end, NOW, rows)
    for host in HOSTS:
        assert engine._indexed().blocking_count(host.id) == _scan_load(rows, host.id)
    for booking in rows:
        assert engine.find(booking.uid) is next(b for b in rows if b.uid == booking.uid)


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_match_a_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    engine = BookingEngine(SandboxClock(NOW))
    for et in EVENT_TYPES:
        engine.add_event_type(et)
    for n in range(150):
        op = rng.random()
        live = [b for b in engine.bookings if b.blocks()]
        try:
            if op < 0.6 or not live:
                skip = rng.random() < 0.2  # lets mechanism B's 409 fire, as the fault does
                engine.create(_request(rng, rng.choice(EVENT_TYPES), n), skip_availability=skip)
            elif op < 0.8:
                engine.cancel(rng.choice(live).uid, "test")
            elif op < 0.98:
                target = rng.choice(live)
                engine.reschedule(target.uid, DAY + timedelta(minutes=15 * rng.randrange(24)), None)
            else:
                engine.bookings.clear()  # behind the engine's back: the index must notice
        except ApiError:
            pass
        _assert_consistent(engine, rng)


def test_host_choice_counts_bookings_of_every_event_type() -> None:
    engine = BookingEngine(SandboxClock(NOW))
    for et in EVENT_TYPES:
        engine.add_event_type(et)
    # Host 3 gets a LONG booking elsewhere in the day, so the round robin prefers hosts 1 and 2.
    engine.create(_fixed(LONG, DAY + timedelta(hours=4), "a@x.test"))
    picks = [engine.create(_fixed(ROUND_ROBIN, DAY, f"p{n}@x.test"))[0].host_id for n in range(3)]
    assert picks == [1, 2, 3]


def _fixed(et: SandboxEventType, start: datetime, email: str) -> CreateInput:
    return CreateInput(start, et.id, None, "Caller", email, "UTC", "en", None)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
def test_is_offered_matches_the_candidate_walk(zone: str) -> None:
    et = SandboxEventType(
        id=9,
        slug="z",
        length_minutes=45,
        slot_interval_minutes=20,
        time_zone=zone,
        working_hours=(("Mon-Fri", "08:10", "12:00"), ("Sat", "22:00", "23:59"), ("Sun", "00:00", "02:30")),
        minimum_notice_minutes=30,
    )
    now = datetime(2030, 3, 8, 0, 0, tzinfo=UTC)
    # Across the European (31 Mar) and US (10 Mar) switches, on and off the grid, with odd seconds.
    cursor = now - timedelta(hours=1)
    while cursor < datetime(2030, 4, 2, tzinfo=UTC):
        for probe in (cursor, cursor + timedelta(seconds=30), cursor + timedelta(microseconds=1)):
            assert is_offered(et, probe, now) == _scan_offered(et, probe, now), probe
        cursor += timedelta(minutes=5)


@pytest.mark.asyncio
async def test_clearing_over_the_control_api_frees_every_slot() -> None:
    sandbox = Sandbox(clock=SandboxClock(NOW), control_enabled=True, event_types=[ROUND_ROBIN])
    for n in range(3):
        sandbox.engine.create(_fixed(ROUND_ROBIN, DAY, f"p{n}@x.test"))
    with pytest.raises(ApiError):
        sandbox.engine.create(_fixed(ROUND_ROBIN, DAY, "late@x.test"))  # every host is busy
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.cal.com") as http:
        (await http.delete("/_sandbox/bookings")).raise_for_status()
    assert sandbox.bookings == []
    booking, created = sandbox.engine.create(_fixed(ROUND_ROBIN, DAY, "p0@x.test"))
    assert created  # no replay of a forgotten booking
    assert booking.host_id == HOSTS[0].id
    assert sandbox.engine.find(booking.uid) is booking
