"""Logs are JSON lines, carry the request context, and never carry personal data or credentials."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from voicebook.logging import configure_logging, get_logger, mask_email, mask_phone, redact

PHONE = "+49301234567"
EMAIL = "hans.mueller@example.com"
CAL_KEY = "cal_live_abc123def4567890abcdef1234567890"
RETELL_KEY = "key_test_0000000000000000"
RETELL_SIGNATURE = "v=1795532531570,d=c765003f8741e95c5420028afe24f3d0d81d2997811d99b3344cfa130c973f9a"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
GUARD_PHRASES = ("STALE BOOKING DETECTED", "CALL ID MISMATCH", "DUPLICATE BOOKING ID IN DATABASE")
BOOKING_UID = "8xT4k2LmQ9aBcDeFgHiJk2"  # 22 base58 characters
CALL_ID = "call_7f3c2a9e41b84d0c9a6e5d21b07"
START = "2026-12-01T15:00:00+01:00"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    structlog.contextvars.clear_contextvars()
    yield buffer
    structlog.contextvars.clear_contextvars()
    configure_logging()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_object_per_line_with_level_timestamp_and_logger(stream: io.StringIO) -> None:
    get_logger("voicebook.test").info("booking.created", calcom_booking_uid=BOOKING_UID)
    get_logger("voicebook.test").warning("booking.slow", seconds=2.5)

    first, second = lines(stream)
    assert first["event"] == "booking.created"
    assert first["level"] == "info"
    assert first["logger"] == "voicebook.test"
    assert first["calcom_booking_uid"] == BOOKING_UID
    assert first["timestamp"].endswith("Z")  # ISO-8601, UTC
    assert second["level"] == "warning"
    assert second["seconds"] == 2.5


def test_context_variables_appear_on_every_event(stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(call_id=CALL_ID, attempt_id=42, company="salon-mitte")
    log = get_logger("voicebook.test")
    log.info("attempt.claimed")
    log.info("calcom.request_sent")

    for line in lines(stream):
        assert line["call_id"] == CALL_ID
        assert line["attempt_id"] == 42
        assert line["company"] == "salon-mitte"


def test_standard_library_records_are_json_and_redacted_too(stream: io.StringIO) -> None:
    """uvicorn and libraries log through ``logging``; their lines must look and be masked the same."""
    logging.getLogger("uvicorn.error").warning("caller %s said %s", PHONE, EMAIL)

    (line,) = lines(stream)
    assert line["logger"] == "uvicorn.error"
    assert line["level"] == "warning"
    assert line["event"] == "caller +49301****67 said h***@example.com"


def test_level_filters(stream: io.StringIO) -> None:
    configure_logging("WARNING", stream=stream)
    get_logger("voicebook.test").info("not.shown")
    get_logger("voicebook.test").error("shown")

    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_reconfiguring_does_not_duplicate_lines(stream: io.StringIO) -> None:
    configure_logging("DEBUG", stream=stream)
    configure_logging("DEBUG", stream=stream)
    get_logger().info("once")

    assert len(lines(stream)) == 1


def test_default_stream_is_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    try:
        get_logger("voicebook.test").info("to.stderr", phone=PHONE)
    finally:
        configure_logging()
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = (json.loads(raw) for raw in captured.err.splitlines())
    assert line == line | {"event": "to.stderr", "phone": "+49301****67"}


def test_secrets_and_personal_data_never_reach_the_output(stream: io.StringIO) -> None:
    log = get_logger("voicebook.test")
    log.info(
        "retell.request",
        phone=PHONE,
        email=EMAIL,
        headers={"X-Retell-Signature": RETELL_SIGNATURE, "Authorization": f"Bearer {BEARER}"},
        calcom_api_key=CAL_KEY,
        retell=SecretStr(RETELL_KEY),
        args={"name": "Hans", "phone": PHONE, "email": EMAIL, "notes": [f"call back on {PHONE}"]},
    )
    # Credentials in free text, where no field name gives them away.
    log.warning(f"upstream said: unauthorized key {CAL_KEY} with header Bearer {BEARER}")
    log.warning(f"signature check failed for {RETELL_SIGNATURE} with {RETELL_KEY}")
    log.info(f"caller {PHONE} gave {EMAIL}")
    try:
        raise ValueError(f"no customer for {PHONE}")
    except ValueError:
        log.exception("customer.lookup_failed")

    output = stream.getvalue()
    for secret in (PHONE, "301234567", EMAIL, "hans.mueller", CAL_KEY, "abc123def", RETELL_KEY, BEARER):
        assert secret not in output
    assert RETELL_SIGNATURE not in output
    assert "c765003f8741e95c" not in output
    assert "1795532531570" not in output

    first = lines(stream)[0]
    assert first["phone"] == "+49301****67"
    assert first["email"] == "h***@example.com"
    assert first["headers"] == {"X-Retell-Signature": "[redacted]", "Authorization": "[redacted]"}
    assert first["calcom_api_key"] == "[redacted]"
    assert first["retell"] == "[redacted]"
    assert first["args"] == {
        "name": "Hans",
        "phone": "+49301****67",
        "email": "h***@example.com",
        "notes": ["call back on +49301****67"],
    }
    assert "Bearer [redacted]" in lines(stream)[1]["event"]
    assert lines(stream)[3]["event"] == "caller +49301****67 gave h***@example.com"


@pytest.mark.parametrize("phrase", GUARD_PHRASES)
def test_guard_phrases_survive_verbatim(stream: io.StringIO, phrase: str) -> None:
    """Operators ``grep "STALE BOOKING DETECTED"``; redaction must not touch these phrases."""
    get_logger("voicebook.booking.guards").warning(
        phrase, call_id=CALL_ID, calcom_booking_uid=BOOKING_UID, start=START, layer=1
    )

    assert phrase in stream.getvalue()
    (line,) = lines(stream)
    assert line["event"] == phrase


def test_ids_and_timestamps_are_not_taken_for_phone_numbers(stream: io.StringIO) -> None:
    text = (
        f"booking {BOOKING_UID} for {CALL_ID} at {START} (created 2026-12-01T14:00:00.123Z, "
        "attempt 3f2a1b4c-1234-5678-9abc-123456789012, event type id 2563193 as a field)"
    )
    get_logger("voicebook.test").info(
        text,
        call_id=CALL_ID,
        calcom_booking_uid=BOOKING_UID,
        start=START,
        created_at="2026-12-01 14:00:00",
        event_type_id=2563193,
        duration_ms=1795532531570,
    )

    (line,) = lines(stream)
    assert line["call_id"] == CALL_ID
    assert line["calcom_booking_uid"] == BOOKING_UID
    assert line["start"] == START
    assert line["created_at"] == "2026-12-01 14:00:00"
    assert line["event_type_id"] == 2563193  # numbers are never masked
    assert line["duration_ms"] == 1795532531570
    for part in (BOOKING_UID, CALL_ID, START, "2026-12-01T14:00:00.123Z", "3f2a1b4c-1234-5678-9abc"):
        assert part in line["event"]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+49301234567", "+49301****67"),
        ("+4917612345678", "+49176******78"),
        ("0301234567", "0301****67"),
        ("1234567", "1****67"),
        ("", ""),
    ],
)
def test_mask_phone_keeps_six_and_two_characters_and_the_length(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked
    assert len(mask_phone(raw)) == len(raw)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+49 30 1234567", "+49 30******67"),
        ("ruf 030-123-4567 an", "ruf 030-12****67 an"),
        ("(030) 123 4567", "(030) ******67"),
        ("Nummer 0301234567.", "Nummer 0301****67."),
        ("?phone=%2B49301234567", "?phone=+49301****67"),  # query strings are decoded, then masked
        ("2026-12-01 0301234567", "2026-12-01 0301****67"),
        # Not phone numbers: left alone.
        ("192.168.100.1:8000", "192.168.100.1:8000"),
        ("3.14159265", "3.14159265"),
        ("GET /v2/bookings/1234567", "GET /v2/bookings/1234567"),
        ("15:00:00", "15:00:00"),
        ("123456", "123456"),
    ],
)
def test_phone_numbers_in_free_text(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("hans@example.com", "h***@example.com"),
        ("booking+call_abc@salon-mitte.example", "b***@salon-mitte.example"),
        ("not-an-address", "***"),
    ],
)
def test_mask_email(raw: str, masked: str) -> None:
    assert mask_email(raw) == masked


def test_redact_is_recursive_and_idempotent() -> None:
    data = {
        "customer": {"phone": PHONE, "emails": (EMAIL,)},
        "api_token": "anything",
        "Password": 1234,
        "count": 3,
        "ok": True,
        "nothing": None,
    }
    once = redact(data)

    assert once == {
        "customer": {"phone": "+49301****67", "emails": ["h***@example.com"]},
        "api_token": "[redacted]",
        "Password": "[redacted]",
        "count": 3,
        "ok": True,
        "nothing": None,
    }
    assert redact(once) == once


def test_url_encoded_email_and_phone_in_a_query_string_are_masked() -> None:
    from voicebook.logging import redact

    line = redact(
        "GET /v2/bookings?attendeeEmail=booking%2Bcall_687%40salon-mitte.example&phone=%2B491701234567"
    )
    assert "salon-mitte.example" in line
    assert "booking+call_687@" not in line
    assert "%40" not in line
    assert "491701234567" not in line
