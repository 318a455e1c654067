"""Europe/Berlin 2026: clocks spring forward on 29 March (02:00 → 03:00) and fall back on
25 October (03:00 → 02:00)."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebook.retell.arguments import CheckAvailability, parse_arguments
from voicebook.retell.errors import ArgumentError
from voicebook.retell.fields import resolve_start

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ("2026-03-29T01:59", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),  # last CET minute
        ("2026-03-29T03:00", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # first CEST minute
        ("2026-03-29T10:00", datetime(2026, 3, 29, 8, 0, tzinfo=UTC)),
        ("2026-03-28T10:00", datetime(2026, 3, 28, 9, 0, tzinfo=UTC)),
        ("2026-10-25T10:00", datetime(2026, 10, 25, 9, 0, tzinfo=UTC)),
        ("2026-10-24T10:00", datetime(2026, 10, 24, 8, 0, tzinfo=UTC)),
        ("2026-10-25T01:59", datetime(2026, 10, 24, 23, 59, tzinfo=UTC)),
        ("2026-10-25T03:00", datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_normal_times_on_and_around_switch_days(wall: str, expected: datetime) -> None:
    assert resolve_start(wall, BERLIN) == expected


@pytest.mark.parametrize("wall", ["2026-03-29T02:00", "2026-03-29T02:30", "2026-03-29 02:59:00"])
def test_spring_forward_gap_does_not_exist(wall: str) -> None:
    with pytest.raises(ArgumentError) as info:
        resolve_start(wall, BERLIN)
    assert (info.value.field, info.value.code) == ("start", "nonexistent_time")


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        # ambiguous: the first occurrence (fold=0, still CEST +02:00) is taken
        ("2026-10-25T02:00", datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),
        ("2026-10-25T02:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25T02:59", datetime(2026, 10, 25, 0, 59, tzinfo=UTC)),
    ],
)
def test_fall_back_overlap_takes_first_occurrence(wall: str, expected: datetime) -> None:
    assert resolve_start(wall, BERLIN) == expected


def test_explicit_offset_picks_the_second_occurrence() -> None:
    # With an offset the caller's instant is unambiguous, the company zone is not consulted.
    assert resolve_start("2026-10-25T02:30+01:00", BERLIN) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_offset_inside_the_gap_is_fine() -> None:
    assert resolve_start("2026-03-29T02:30+01:00", BERLIN) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_nonexistent_new_start_names_its_field() -> None:
    with pytest.raises(ArgumentError) as info:
        parse_arguments(
            "reschedule_appointment",
            {"new_start": "2026-03-29T02:30"},
            tz=BERLIN,
            region="DE",
            now=NOW,
            caller_phone="+491701234567",
        )
    assert (info.value.field, info.value.code) == ("new_start", "nonexistent_time")


def test_availability_time_in_gap_is_refused() -> None:
    with pytest.raises(ArgumentError) as info:
        parse_arguments(
            "check_availability",
            {"service": "Haarschnitt", "date": "2026-03-29", "time": "02:30"},
            tz=BERLIN,
            region="DE",
            now=NOW,
            caller_phone=None,
        )
    assert (info.value.field, info.value.code) == ("time", "nonexistent_time")


def test_availability_on_fall_back_day() -> None:
    command = parse_arguments(
        "check_availability",
        {"service": "Haarschnitt", "date": "2026-10-25", "time": "10:00"},
        tz=BERLIN,
        region="DE",
        now=NOW,
        caller_phone=None,
    )
    assert command == CheckAvailability(
        "Haarschnitt", date(2026, 10, 25), time(10), datetime(2026, 10, 25, 9, tzinfo=UTC)
    )


def test_today_is_the_company_day_not_the_utc_day() -> None:
    # 23:30 UTC on 28 March is already 29 March (00:30) in Berlin.
    now = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    command = parse_arguments(
        "check_availability",
        {"service": "Haarschnitt"},
        tz=BERLIN,
        region="DE",
        now=now,
        caller_phone=None,
    )
    assert isinstance(command, CheckAvailability)
    assert command.day == date(2026, 3, 29)


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_other_zones_round_trip(zone: str) -> None:
    tz = ZoneInfo(zone)
    instant = resolve_start("2026-07-01T09:15", tz)
    assert instant.astimezone(tz).replace(tzinfo=None) == datetime(2026, 7, 1, 9, 15)
