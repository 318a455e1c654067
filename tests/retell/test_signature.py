import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from voicebook.retell.signature import MAX_SKEW_MS, sign_body, verify_signature

DATA = Path(__file__).parent / "data"
KEY = "key_test_0000000000000000"
NOW = 1_795_532_531_570
BODY = b'{"name":"book_appointment","args":{"service":"Haarschnitt"}}'


def _secret(key: str = KEY) -> SecretStr:
    return SecretStr(key)


def test_reference_vector_from_readme() -> None:
    obj = json.loads((DATA / "webhook_call_started.json").read_text(encoding="utf-8"))
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header = "v=1795532531570,d=c765003f8741e95c5420028afe24f3d0d81d2997811d99b3344cfa130c973f9a"
    assert sign_body(body, KEY, 1795532531570) == header
    assert verify_signature(body, header, _secret(), now_ms=1795532531570)


def test_sdk_signed_body_passes() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert header.startswith(f"v={NOW},d=")
    assert verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_default_clock_accepts_fresh_signature() -> None:
    assert verify_signature(BODY, sign_body(BODY, KEY), _secret())


@pytest.mark.parametrize("skew", [-MAX_SKEW_MS, MAX_SKEW_MS, 0, 1000])
def test_within_five_minutes_passes(skew: int) -> None:
    assert verify_signature(BODY, sign_body(BODY, KEY, NOW + skew), _secret(), now_ms=NOW)


def test_tampered_body_fails() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature(BODY.replace(b"Haar", b"Bart"), header, _secret(), now_ms=NOW)
    assert not verify_signature(BODY + b" ", header, _secret(), now_ms=NOW)


def test_other_key_fails() -> None:
    header = sign_body(BODY, "key_other", NOW)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_empty_key_fails() -> None:
    header = sign_body(BODY, "", NOW)
    assert not verify_signature(BODY, header, _secret(""), now_ms=NOW)


@pytest.mark.parametrize("minutes", [-6, 6])
def test_stale_or_future_signature_fails(minutes: int) -> None:
    header = sign_body(BODY, KEY, NOW + minutes * 60_000)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_just_outside_window_fails() -> None:
    header = sign_body(BODY, KEY, NOW - MAX_SKEW_MS - 1)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_uppercase_hex_fails() -> None:
    version, digest = sign_body(BODY, KEY, NOW).split(",d=")
    assert not verify_signature(BODY, f"{version},d={digest.upper()}", _secret(), now_ms=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "v=,d=",
        f"v={NOW}",
        f"d={'a' * 64}",
        f"v={NOW},d={'a' * 63}",
        f"v={NOW},d={'g' * 64}",
        f"v=abc,d={'a' * 64}",
        f"d={'a' * 64},v={NOW}",
        f"v={NOW}, d={'a' * 64}",
        f"v={NOW},d={'a' * 64}\n",
        f"v=-{NOW},d={'a' * 64}",
        "v=١٢٣,d=" + "a" * 64,
    ],
)
def test_missing_or_malformed_header_fails(header: str | None) -> None:
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_signature_with_trailing_whitespace_fails() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature(BODY, header + " ", _secret(), now_ms=NOW)


def test_non_utf8_body_fails_without_raising() -> None:
    assert not verify_signature(b"\xff\xfe", sign_body(b"x", KEY, NOW), _secret(), now_ms=NOW)


def test_wrong_argument_types_never_raise() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature("text", header, _secret(), now_ms=NOW)  # type: ignore[arg-type]
    assert not verify_signature(BODY, 42, _secret(), now_ms=NOW)  # type: ignore[arg-type]
