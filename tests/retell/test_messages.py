from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebook.retell import messages as m
from voicebook.retell.errors import ArgumentError

BERLIN = ZoneInfo("Europe/Berlin")
# Tuesday 10 October 2023, 08:00 in Berlin (CEST) = 06:00 UTC
TUE_8 = datetime(2023, 10, 10, 6, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return TUE_8 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", "Dienstag, 10. Oktober um 8:00 Uhr"),
        ("de-AT", "Dienstag, 10. Oktober um 8:00 Uhr"),
        ("de_DE", "Dienstag, 10. Oktober um 8:00 Uhr"),
        ("en", "Tuesday, October 10 at 8:00 AM"),
        ("fr", "Tuesday, October 10 at 8:00 AM"),
        (None, "Tuesday, October 10 at 8:00 AM"),
    ],
)
def test_spoken_datetime(locale: str | None, expected: str) -> None:
    assert m.spoken_datetime(TUE_8, BERLIN, locale) == expected


def test_spoken_datetime_is_never_utc() -> None:
    new_york = ZoneInfo("America/New_York")
    assert m.spoken_datetime(TUE_8, new_york, "en") == "Tuesday, October 10 at 2:00 AM"
    assert m.spoken_datetime(TUE_8.astimezone(new_york), BERLIN, "de") == (
        "Dienstag, 10. Oktober um 8:00 Uhr"
    )


@pytest.mark.parametrize(
    ("minutes", "de", "en"),
    [
        (30, "8:30 Uhr", "8:30 AM"),
        (4 * 60, "12:00 Uhr", "12:00 PM"),
        (7 * 60 + 5, "15:05 Uhr", "3:05 PM"),
        (-8 * 60, "0:00 Uhr", "12:00 AM"),
    ],
)
def test_spoken_time(minutes: int, de: str, en: str) -> None:
    assert m.spoken_time(at(minutes), BERLIN, "de") == de
    assert m.spoken_time(at(minutes), BERLIN, "en") == en


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        m.spoken_datetime(datetime(2023, 10, 10, 8), BERLIN, "de")


def test_booked() -> None:
    assert m.booked("Haarschnitt", TUE_8, BERLIN, "de") == (
        "Ihr Termin für Haarschnitt ist gebucht: Dienstag, 10. Oktober um 8:00 Uhr."
    )
    assert m.booked("haircut", TUE_8, BERLIN, "en") == (
        "Your haircut appointment is booked for Tuesday, October 10 at 8:00 AM."
    )


def test_available_lists_at_most_three_sorted_times() -> None:
    slots = [at(60), at(0), at(30), at(90)]
    assert m.available(slots, BERLIN, "de") == (
        "Am Dienstag, 10. Oktober ist um 8:00 Uhr, 8:30 Uhr oder 9:00 Uhr noch etwas frei."
    )
    assert m.available(slots, BERLIN, "en") == ("On Tuesday, October 10 I have 8:00 AM, 8:30 AM or 9:00 AM.")


def test_available_over_several_days_and_empty() -> None:
    slots = [at(0), at(24 * 60)]
    assert m.available(slots, BERLIN, "de") == (
        "Frei wäre Dienstag, 10. Oktober um 8:00 Uhr oder Mittwoch, 11. Oktober um 8:00 Uhr."
    )
    assert m.available([], BERLIN, "en") == "Sorry, there is nothing free on that day."


def test_slot_unavailable_offers_alternatives() -> None:
    assert m.slot_unavailable([at(30), at(60)], BERLIN, "de") == (
        "Dieser Termin ist leider nicht frei. "
        "Ich kann Ihnen Dienstag, 10. Oktober um 8:30 Uhr oder 9:00 Uhr anbieten."
    )
    assert m.slot_unavailable([], BERLIN, "en") == (
        "Sorry, that time is not available. Shall I look at another day?"
    )


def test_rejected_duplicate_says_not_confirmed() -> None:
    assert m.rejected_duplicate([at(30)], BERLIN, "en") == (
        "Sorry, I could not confirm that slot. I can offer Tuesday, October 10 at 8:30 AM."
    )
    assert "nicht bestätigen" in m.rejected_duplicate([], BERLIN, "de")


def test_cancelled_rescheduled_in_progress() -> None:
    assert m.cancelled(TUE_8, BERLIN, "de") == (
        "Ihr Termin am Dienstag, 10. Oktober um 8:00 Uhr ist storniert."
    )
    assert m.rescheduled(at(90), BERLIN, "en") == (
        "Your appointment is moved to Tuesday, October 10 at 9:30 AM."
    )
    assert "call or text you back" in m.in_progress("en")
    assert "SMS" in m.in_progress("de")


@pytest.mark.parametrize(
    ("field", "code", "de", "en"),
    [
        ("date", "past", "Das Datum liegt in der Vergangenheit.", "That date is in the past."),
        ("start", "past", "Das Datum liegt in der Vergangenheit.", "That time is in the past."),
        ("name", "missing", "Mir fehlt noch Ihr Name.", "I still need your name."),
        ("email", "bad_email", "Die E-Mail-Adresse scheint nicht zu stimmen.",
         "That e-mail address does not seem to be valid."),
        ("new_start", "nonexistent_time",
         "Diese Uhrzeit gibt es an dem Tag wegen der Zeitumstellung nicht.",
         "That time does not exist on that day because the clocks change."),
        ("args", "invalid", "Eine Angabe habe ich nicht verstanden.",
         "I did not understand one of the details."),
        ("start", "too_far", "Das Datum liegt zu weit in der Zukunft.",
         "That date is too far in the future."),
        ("date", "too_far", "Das Datum liegt zu weit in der Zukunft.",
         "That date is too far in the future."),
    ],
)  # fmt: skip
def test_invalid_input(field: str, code: str, de: str, en: str) -> None:
    error = ArgumentError(field, code)  # type: ignore[arg-type]
    assert m.invalid_input(error, "de") == de
    assert m.invalid_input(error, "en") == en


@pytest.mark.parametrize(
    "code",
    ["missing", "invalid", "bad_date", "bad_time", "past", "too_far", "nonexistent_time", "bad_phone",
     "bad_email", "too_long", "unchanged", "unknown_function"],
)  # fmt: skip
@pytest.mark.parametrize("field", ["service", "date", "time", "start", "new_start", "name",
                                   "phone", "email", "notes", "args"])  # fmt: skip
def test_every_error_has_a_short_sentence(field: str, code: str) -> None:
    for locale in ("de", "en"):
        text = m.invalid_input(ArgumentError(field, code), locale)  # type: ignore[arg-type]
        assert text.endswith(".")
        assert len(text) < 120


def test_not_found_and_upstream() -> None:
    assert m.service_not_found(["Haarschnitt", "Färben", "Bart"], "de") == (
        "Diese Leistung bieten wir nicht an; möglich sind Haarschnitt, Färben oder Bart."
    )
    assert m.service_not_found([], "en") == "Sorry, we do not offer that."
    assert m.appointment_not_found("en") == ("I could not find an appointment for that phone number.")
    assert "nicht erreichbar" in m.upstream_error("de")
    assert "not reachable" in m.upstream_error("en")


def test_conflict_unknown_number_and_call_id() -> None:
    assert "anderen Angaben" in m.attempt_conflict("de")
    assert "different details" in m.attempt_conflict("en")
    assert m.unknown_number("en") == "Sorry, I cannot book appointments through this number."
    assert "nicht zuordnen" in m.invalid_input(ArgumentError("call_id", "missing"), "de")


@pytest.mark.parametrize(
    ("days", "de", "en"),
    [
        (365, "So weit im Voraus kann ich leider nicht buchen; Termine gibt es höchstens 365 Tage im Voraus.",
         "Sorry, I cannot book that far ahead; appointments are at most 365 days ahead."),
        (1, "So weit im Voraus kann ich leider nicht buchen; Termine gibt es höchstens 1 Tag im Voraus.",
         "Sorry, I cannot book that far ahead; appointments are at most 1 day ahead."),
    ],
)  # fmt: skip
def test_too_far_ahead(days: int, de: str, en: str) -> None:
    """Issue 13, case 8: outside the service's max_days_ahead, say the limit."""
    assert m.too_far_ahead(days, "de") == de
    assert m.too_far_ahead(days, "en") == en


@pytest.mark.parametrize(
    ("minutes", "de", "en"),
    [
        (30, "30 Minuten", "30 minutes"),
        (60, "1 Stunde", "1 hour"),
        (90, "90 Minuten", "90 minutes"),
        (120, "2 Stunden", "2 hours"),
        (24 * 60, "1 Tag", "1 day"),
        (3 * 24 * 60, "3 Tage", "3 days"),
        (1, "1 Minute", "1 minute"),
    ],
)
def test_too_short_notice_names_the_notice(minutes: int, de: str, en: str) -> None:
    assert m.too_short_notice(minutes, "de") == (
        "So kurzfristig kann ich leider nicht buchen; "
        f"bitte wählen Sie einen Termin mindestens {de} im Voraus."
    )
    assert m.too_short_notice(minutes, "en") == (
        f"Sorry, that is too short notice; please choose a time at least {en} ahead."
    )


def test_too_short_notice_without_a_minimum() -> None:
    assert m.too_short_notice(0, "de") == "So kurzfristig kann ich leider nicht buchen."
    assert m.too_short_notice(0, "en") == "Sorry, that is too short notice."
