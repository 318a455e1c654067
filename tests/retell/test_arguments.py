"""Arguments as LLMs actually send them: each row is (function, args, caller phone, expected)."""

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebook.retell.arguments import (
    BookAppointment,
    CancelAppointment,
    CheckAvailability,
    Command,
    RescheduleAppointment,
    parse_arguments,
)
from voicebook.retell.errors import ArgumentError

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Berlin (CET)
CALLER = "+491701234567"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def book(**kw: object) -> BookAppointment:
    base: dict[str, object] = {
        "service": "Haarschnitt",
        "start": utc(2026, 3, 10, 8, 0),
        "name": "Jürgen Müller",
        "phone": CALLER,
    }
    base.update(kw)
    return BookAppointment(**base)  # type: ignore[arg-type]


def err(field: str, code: str) -> tuple[str, str]:
    return (field, code)


HS = {"service": "Haarschnitt"}
BK = {"service": "Haarschnitt", "start": "2026-03-10T09:00", "name": "Jürgen Müller"}

CASES: list[tuple[str, str, Mapping[str, object], str | None, Command | tuple[str, str]]] = [
    # check_availability
    ("ca-full", "check_availability", {**HS, "date": "2026-03-10", "time": "09:00"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10), time(9, 0), utc(2026, 3, 10, 8, 0))),
    ("ca-today", "check_availability", HS, None, CheckAvailability("Haarschnitt", date(2026, 3, 2))),
    ("ca-null-date", "check_availability", {**HS, "date": None, "time": ""}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 2))),
    ("ca-iso-datetime", "check_availability", {**HS, "date": "2026-03-10T14:00:00+01:00"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10))),
    ("ca-hour-only", "check_availability", {**HS, "date": "2026-03-10", "time": "9"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10), time(9), utc(2026, 3, 10, 8))),
    ("ca-uhr", "check_availability", {**HS, "date": "2026-03-10", "time": "9 Uhr"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10), time(9), utc(2026, 3, 10, 8))),
    ("ca-uhr-minutes", "check_availability", {**HS, "date": "2026-03-10", "time": "14:30 Uhr"},
     None, CheckAvailability("Haarschnitt", date(2026, 3, 10), time(14, 30), utc(2026, 3, 10, 13, 30))),
    ("ca-pm", "check_availability", {**HS, "date": "2026-03-10", "time": "3 PM"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10), time(15), utc(2026, 3, 10, 14))),
    ("ca-int-time", "check_availability", {**HS, "date": "2026-03-10", "time": 9}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10), time(9), utc(2026, 3, 10, 8))),
    ("ca-german-date", "check_availability", {**HS, "date": "10.03.2026"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 10))),
    ("ca-morgen", "check_availability", {**HS, "date": "morgen"}, None,
     CheckAvailability("Haarschnitt", date(2026, 3, 3))),
    ("ca-alias-service", "check_availability", {"service": "  Herrenschnitt "}, None,
     CheckAvailability("Herrenschnitt", date(2026, 3, 2))),
    ("ca-feb-30", "check_availability", {**HS, "date": "2026-02-30"}, None, err("date", "bad_date")),
    ("ca-words", "check_availability", {**HS, "date": "next tuesday"}, None, err("date", "bad_date")),
    ("ca-past-date", "check_availability", {**HS, "date": "2026-03-01"}, None, err("date", "past")),
    ("ca-25h", "check_availability", {**HS, "date": "2026-03-10", "time": "25:00"}, None,
     err("time", "bad_time")),
    ("ca-13pm", "check_availability", {**HS, "date": "2026-03-10", "time": "13 PM"}, None,
     err("time", "bad_time")),
    ("ca-earlier-today", "check_availability", {**HS, "time": "07:00"}, None, err("time", "past")),
    ("ca-no-service", "check_availability", {"date": "2026-03-10"}, None, err("service", "missing")),
    ("ca-empty-service", "check_availability", {"service": "  "}, None, err("service", "missing")),
    ("ca-service-list", "check_availability", {"service": ["a"]}, None, err("service", "invalid")),
    # book_appointment
    ("bk-canonical", "book_appointment", {**BK, "phone": "030 1234567"}, CALLER,
     book(phone="+49301234567")),
    ("bk-seconds", "book_appointment", {**BK, "start": "2026-03-10T09:00:00"}, CALLER, book()),
    ("bk-space", "book_appointment", {**BK, "start": "2026-03-10 09:00"}, CALLER, book()),
    ("bk-single-digit-hour", "book_appointment", {**BK, "start": "2026-03-10T9:00"}, CALLER, book()),
    ("bk-zulu", "book_appointment", {**BK, "start": "2026-03-10T08:00:00Z"}, CALLER, book()),
    ("bk-offset", "book_appointment", {**BK, "start": "2026-03-10T09:00:00+01:00"}, CALLER, book()),
    ("bk-millis", "book_appointment", {**BK, "start": "2026-03-10T08:00:00.000Z"}, CALLER, book()),
    ("bk-reference-aliases", "book_appointment", {
        "slot_start": "2026-12-01T15:00:00-05:00", "timezone": "America/New_York",
        "service": "cleaning", "attendee_name": "Maria Gonzalez",
        "attendee_email": "maria.gonzalez@example.com", "attendee_phone": "+12125550147",
        "notes": "New patient, prefers afternoons"}, "+12125550147",
     BookAppointment("cleaning", utc(2026, 12, 1, 20, 0), "Maria Gonzalez", "+12125550147",
                     "maria.gonzalez@example.com", "New patient, prefers afternoons")),
    ("bk-caller-phone", "book_appointment", BK, CALLER, book()),
    ("bk-no-phone-at-all", "book_appointment", BK, None, book(phone=None)),
    ("bk-anonymous-caller", "book_appointment", BK, "anonymous", book(phone=None)),
    ("bk-phone-brackets", "book_appointment", {**BK, "phone": "+49 (0)30 1234567"}, None,
     book(phone="+49301234567")),
    ("bk-email-case", "book_appointment", {**BK, "email": " Maria@Example.COM "}, CALLER,
     book(email="Maria@example.com")),
    ("bk-email-empty", "book_appointment", {**BK, "email": ""}, CALLER, book()),
    ("bk-email-null-string", "book_appointment", {**BK, "email": "null"}, CALLER, book()),
    ("bk-email-spoken", "book_appointment", {**BK, "email": "maria at example dot com"}, CALLER,
     err("email", "bad_email")),
    ("bk-email-number", "book_appointment", {**BK, "email": 5}, CALLER, err("email", "bad_email")),
    ("bk-phone-short", "book_appointment", {**BK, "phone": "12345"}, CALLER, err("phone", "bad_phone")),
    ("bk-phone-letters", "book_appointment", {**BK, "phone": "call me"}, CALLER,
     err("phone", "bad_phone")),
    ("bk-name-spaces", "book_appointment", {**BK, "name": "  Anna   Lena  Schmidt "}, CALLER,
     book(name="Anna Lena Schmidt")),
    ("bk-name-blank", "book_appointment", {**BK, "name": "   "}, CALLER, err("name", "missing")),
    ("bk-name-unknown", "book_appointment", {**BK, "name": "unknown"}, CALLER, err("name", "missing")),
    ("bk-name-long", "book_appointment", {**BK, "name": "x" * 101}, CALLER, err("name", "too_long")),
    ("bk-name-digits", "book_appointment", {**BK, "name": 42}, CALLER, err("name", "invalid")),
    ("bk-notes-long", "book_appointment", {**BK, "notes": "x" * 501}, CALLER, err("notes", "too_long")),
    ("bk-notes-ok", "book_appointment", {**BK, "notes": "Bitte kurz"}, CALLER, book(notes="Bitte kurz")),
    ("bk-past", "book_appointment", {**BK, "start": "2026-03-01T09:00"}, CALLER, err("start", "past")),
    ("bk-earlier-today", "book_appointment", {**BK, "start": "2026-03-02T09:59"}, CALLER,
     err("start", "past")),
    ("bk-words", "book_appointment", {**BK, "start": "tomorrow at 9"}, CALLER, err("start", "bad_time")),
    ("bk-date-only", "book_appointment", {**BK, "start": "2026-03-10"}, CALLER, err("start", "bad_time")),
    ("bk-epoch", "book_appointment", {**BK, "start": 1773129600}, CALLER, err("start", "bad_time")),
    ("bk-bad-offset", "book_appointment", {**BK, "start": "2026-03-10T09:00+25:00"}, CALLER,
     err("start", "bad_time")),
    ("bk-no-start", "book_appointment", {"service": "Haarschnitt", "name": "Anna"}, CALLER,
     err("start", "missing")),
    ("bk-no-service", "book_appointment", {"start": "2026-03-10T09:00", "name": "Anna"}, CALLER,
     err("service", "missing")),
    # cancel_appointment
    # the caller's number is never filled in as ``phone``: who calls comes from the signed call, and a
    # ``phone`` argument only narrows the caller's own appointments
    ("cx-caller", "cancel_appointment", {}, CALLER, CancelAppointment()),
    ("cx-no-phone", "cancel_appointment", {}, None, CancelAppointment()),
    ("cx-with-start", "cancel_appointment", {"phone": "0151 23456789", "start": "2026-03-10T09:00"},
     None, CancelAppointment("+4915123456789", utc(2026, 3, 10, 8))),
    ("cx-past-start-is-lookup", "cancel_appointment", {"start": "2026-02-01T09:00"}, CALLER,
     CancelAppointment(None, utc(2026, 2, 1, 8))),
    ("cx-bad-start", "cancel_appointment", {"start": "Dienstag"}, CALLER, err("start", "bad_time")),
    # reschedule_appointment
    ("rs-caller", "reschedule_appointment", {"new_start": "2026-03-11T10:00"}, CALLER,
     RescheduleAppointment(utc(2026, 3, 11, 9))),
    ("rs-both", "reschedule_appointment",
     {"start": "2026-03-10T09:00", "new_start": "2026-03-11 10:30:00"}, CALLER,
     RescheduleAppointment(utc(2026, 3, 11, 9, 30), None, utc(2026, 3, 10, 8))),
    ("rs-alias", "reschedule_appointment",
     {"slot_start": "2026-03-10T09:00", "new_slot_start": "2026-03-11T10:00"}, CALLER,
     RescheduleAppointment(utc(2026, 3, 11, 9), None, utc(2026, 3, 10, 8))),
    ("rs-missing", "reschedule_appointment", {"start": "2026-03-10T09:00"}, CALLER,
     err("new_start", "missing")),
    ("rs-same", "reschedule_appointment",
     {"start": "2026-03-10T09:00", "new_start": "2026-03-10T08:00:00Z"}, CALLER,
     RescheduleAppointment(utc(2026, 3, 10, 8), None, utc(2026, 3, 10, 8))),  # said as "already then"
    ("rs-past", "reschedule_appointment", {"new_start": "2026-03-01T10:00"}, CALLER,
     err("new_start", "past")),
    ("rs-no-phone", "reschedule_appointment", {"new_start": "2026-03-11T10:00"}, None,
     RescheduleAppointment(utc(2026, 3, 11, 9))),
    ("rs-phone-narrows", "reschedule_appointment",
     {"new_start": "2026-03-11T10:00", "phone": "0151 23456789"}, CALLER,
     RescheduleAppointment(utc(2026, 3, 11, 9), "+4915123456789")),
    # the horizon (issue 13, case 8): nothing past ten years ahead, nothing that can overflow later
    ("bk-year-9999", "book_appointment", {**BK, "start": "9999-12-30T10:00"}, CALLER,
     err("start", "too_far")),
    ("bk-end-of-time", "book_appointment", {**BK, "start": "9999-12-31T23:30"}, CALLER,
     err("start", "too_far")),
    ("bk-end-of-time-offset", "book_appointment", {**BK, "start": "9999-12-31T23:59-14:00"}, CALLER,
     err("start", "too_far")),
    ("bk-horizon-inside", "book_appointment", {**BK, "start": "2036-03-08T10:00"}, CALLER,
     book(start=utc(2036, 3, 8, 9))),
    ("bk-horizon-outside", "book_appointment", {**BK, "start": "2036-03-10T10:00"}, CALLER,
     err("start", "too_far")),
    ("ca-year-9999", "check_availability", {**HS, "date": "9999-12-31"}, None, err("date", "too_far")),
    ("ca-year-9999-time", "check_availability", {**HS, "date": "9999-12-31", "time": "23:30"}, None,
     err("date", "too_far")),
    ("cx-year-9999", "cancel_appointment", {"start": "9999-12-31T23:30"}, CALLER, err("start", "too_far")),
    ("cx-year-1", "cancel_appointment", {"start": "0001-01-01T00:30"}, CALLER, err("start", "past")),
    ("rs-year-9999", "reschedule_appointment", {"new_start": "9999-12-31T23:30"}, CALLER,
     err("new_start", "too_far")),
    ("rs-from-year-9999", "reschedule_appointment",
     {"start": "9999-12-31T23:30", "new_start": "2026-03-11T10:00"}, CALLER, err("start", "too_far")),
    # dispatch
    ("unknown-function", "delete_everything", {}, CALLER, err("name", "unknown_function")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("function", "args", "caller", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_llm_argument_variants(
    function: str,
    args: Mapping[str, object],
    caller: str | None,
    expected: Command | tuple[str, str],
) -> None:
    def parse() -> Command:
        return parse_arguments(function, args, tz=BERLIN, region="DE", now=NOW, caller_phone=caller)

    if isinstance(expected, tuple):
        with pytest.raises(ArgumentError) as info:
            parse()
        assert (info.value.field, info.value.code) == expected
    else:
        assert parse() == expected


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_commands_are_frozen_and_name_their_function() -> None:
    command = parse_arguments("book_appointment", BK, tz=BERLIN, region="DE", now=NOW, caller_phone=None)
    assert isinstance(command, BookAppointment)
    assert command.function == "book_appointment"
    with pytest.raises(AttributeError):
        command.name = "x"  # type: ignore[misc]


def test_starts_are_utc_aware() -> None:
    command = parse_arguments("book_appointment", BK, tz=BERLIN, region="DE", now=NOW, caller_phone=None)
    assert isinstance(command, BookAppointment)
    assert command.start.utcoffset() is not None
    assert command.start.tzinfo is UTC


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_arguments(
            "book_appointment",
            BK,
            tz=BERLIN,
            region="DE",
            now=datetime(2026, 3, 2),
            caller_phone=None,
        )


def test_non_mapping_args_are_invalid() -> None:
    with pytest.raises(ArgumentError) as info:
        parse_arguments(
            "book_appointment",
            ["x"],  # type: ignore[arg-type]
            tz=BERLIN,
            region="DE",
            now=NOW,
            caller_phone=None,
        )
    assert (info.value.field, info.value.code) == ("args", "invalid")


def test_control_characters_are_dropped_from_text() -> None:
    command = parse_arguments(
        "book_appointment",
        {**BK, "name": "Anna\x00 Lena\tSchmidt", "notes": "Zeile 1\nZeile 2"},
        tz=BERLIN,
        region="DE",
        now=NOW,
        caller_phone=None,
    )
    assert isinstance(command, BookAppointment)
    assert command.name == "Anna Lena Schmidt"
    assert command.notes == "Zeile 1 Zeile 2"
