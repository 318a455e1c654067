"""Logs are JSON lines, carry the request context, and never carry personal data or credentials."""

from __future__ import annotations

import io
import json
import logging
import re
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


class _Keep(logging.Handler):
    """Keeps the records it is handed, as pytest's ``caplog`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z")


@pytest.mark.parametrize("as_json", [True, False])
def test_the_formatter_renders_what_structlogs_processor_formatter_renders(
    stream: io.StringIO, as_json: bool
) -> None:
    """``_Formatter`` skips ``ProcessorFormatter``'s record copy; the lines must not change, nor the records
    that other handlers see. (A standard library record is stamped when it is formatted, so the two
    renderings differ in that instant only: it is blanked out. ``stack_info=True`` is left out: the stack
    is the formatting call's, which differs by construction.)"""
    from voicebook.logging import _chains, _Formatter

    keep = _Keep()
    logging.getLogger().addHandler(keep)
    try:
        structlog.contextvars.bind_contextvars(call_id=CALL_ID, attempt_id=42)
        log = get_logger("voicebook.test")
        log.info("booking.recorded", calcom_booking_uid=BOOKING_UID, phone=PHONE, start=START)
        log.warning("caller %s said %s", PHONE, EMAIL)
        log.log(logging.ERROR, "by.level", count=3, ratio=0.5, ok=True, nothing=None)
        log.critical("nested", args={"phone": PHONE, "notes": [EMAIL, "Jörg"]}, api_key=CAL_KEY)
        logging.getLogger("uvicorn.error").warning("caller %s said %s", PHONE, EMAIL)
        try:
            raise ValueError(f"no customer for {PHONE}")
        except ValueError:
            log.exception("customer.lookup_failed")
            logging.getLogger("sqlalchemy").exception("query failed for %s", EMAIL)
    finally:
        logging.getLogger().removeHandler(keep)

    shared, processors = _chains(as_json)
    ours = _Formatter(foreign_pre_chain=shared, processors=processors)
    theirs = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=processors)
    assert len(keep.records) == 7
    for record in keep.records:
        before = dict(record.__dict__)
        line = ours.format(record)
        assert record.__dict__ == before  # nothing written onto the record others see
        assert _ISO_INSTANT.sub("T", line) == _ISO_INSTANT.sub("T", theirs.format(record))
        for secret in (PHONE, EMAIL, CAL_KEY):
            assert secret not in line
    if as_json:  # formatted while the exception was being handled, as in the app
        failed = next(line for line in lines(stream) if line["event"] == "customer.lookup_failed")
        assert "ValueError: no customer for +49301****67" in failed["exception"]


def test_structlog_records_reach_every_handler_with_level_name_and_event(stream: io.StringIO) -> None:
    """Records are made without looking up the caller's frame; what handlers use of them is all there."""
    keep = _Keep()
    logging.getLogger().addHandler(keep)
    try:
        log = get_logger("voicebook.test")
        log.debug("at.debug")
        log.info("at.info", n=1)
        log.warning("at.warning")
        log.error("at.error")
        log.critical("at.critical")
        log.fatal("at.fatal")
        log.log(logging.INFO, "at.log")
        try:
            raise KeyError("x")
        except KeyError:
            log.exception("at.exception")
    finally:
        logging.getLogger().removeHandler(keep)

    seen = [(r.name, r.levelno, r.msg["event"]) for r in keep.records]  # type: ignore[index]
    assert seen == [
        ("voicebook.test", logging.DEBUG, "at.debug"),
        ("voicebook.test", logging.INFO, "at.info"),
        ("voicebook.test", logging.WARNING, "at.warning"),
        ("voicebook.test", logging.ERROR, "at.error"),
        ("voicebook.test", logging.CRITICAL, "at.critical"),
        ("voicebook.test", logging.CRITICAL, "at.fatal"),
        ("voicebook.test", logging.INFO, "at.log"),
        ("voicebook.test", logging.ERROR, "at.exception"),
    ]
    assert keep.records[-1].exc_info is not None  # the standard library's own path, as before
    assert [line["event"] for line in lines(stream)] == [event for _, _, event in seen]
    assert "KeyError" in lines(stream)[-1]["exception"]


def test_json_serializer_is_json_dumps() -> None:
    """The kept encoder gives what ``json.dumps`` with the renderer's options gives."""
    from voicebook.logging import _json_dumps

    def fallback(obj: object) -> str:
        return f"<{type(obj).__name__}>"

    events: list[dict[str, Any]] = [
        {"event": "x", "n": 1, "f": 0.1, "big": 10**30, "ok": False, "none": None},
        {"event": "Jörg ✓ \u2028 \x00", "nested": {"list": [1, "a", {"b": [None]}]}},
        {"event": "object", "value": object(), "nan": float("nan")},
    ]
    for event in events:
        for options in ({"ensure_ascii": False, "default": fallback}, {"default": fallback, "indent": 2}):
            assert _json_dumps(event, **options) == json.dumps(event, **options)
    assert _json_dumps(events[0]) == json.dumps(events[0])
