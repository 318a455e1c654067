"""Property: personal data and secrets written inside free text never survive ``redact()``.

Hypothesis builds e-mail addresses (internationalised, hosts without a dot), phone numbers in the ways
people write them (dots, spaces, dashes, parentheses, with or without +country), prefixed tokens and
configured secret values, puts them between words, and checks what comes out: the address's mailbox, all
but eight of the phone's digits (``mask_phone`` keeps six characters in front and two at the end) and the
whole token are gone.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebook.logging import REDACTED, redact, register_secrets

LETTERS = "abcdefghijklmnopqrstuvwxyzäöüßéñø"
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CONFIGURED = "Zq8-v3ryPrivateAdminToken"

# "bearer" followed by a word is a bearer token to ``redact()`` (and rightly masked): not filler.
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).filter(lambda w: w != "bearer")
filler = st.lists(words, min_size=0, max_size=4).map(" ".join)
glue = st.sampled_from([" ", ": ", " (", ", ", " = ", "\n", " <"])
tail = st.sampled_from(["", " ", ".", ")", ",", ">", "\n", "!"])


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.text(alphabet=LETTERS + "0123456789._+-", min_size=2, max_size=12))
    local = draw(st.sampled_from(LETTERS)) + local.strip(".")  # a mailbox starts with a letter here
    labels = draw(
        st.lists(st.text(alphabet=LETTERS + "0123456789-", min_size=1, max_size=10), min_size=1, max_size=3)
    )
    labels = [label.strip("-") or "x" for label in labels]
    return f"{local}@{'.'.join(labels)}"


@st.composite
def phones(draw: st.DrawFn) -> str:
    national = draw(st.sampled_from("123456789")) + draw(
        st.text(alphabet="0123456789", min_size=8, max_size=10)
    )
    # Groups of two digits or more, as people write them (a lone digit between dots reads as a version).
    cuts = sorted(draw(st.sets(st.sampled_from(range(2, len(national) - 1, 2)), min_size=1, max_size=3)))
    groups = [national[a:b] for a, b in zip([0, *cuts], [*cuts, len(national)], strict=True)]
    separator = draw(st.sampled_from([".", " ", "-", "/"]))
    style = draw(st.sampled_from(["plain", "plus", "parens"]))
    if style == "plus":
        return "+49" + separator + separator.join(groups)
    if style == "parens":
        return f"(0{groups[0]}) " + separator.join(groups[1:])
    return "0" + separator.join(groups)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    prefix = draw(
        st.sampled_from(["whsec_", "cal_live_", "cal_test_", "cal_", "key_", "sk_live_", "sk_test_", "sk_"])
    )
    body = draw(st.text(alphabet=ALNUM, min_size=8, max_size=40))
    return prefix + body


@settings(max_examples=300, deadline=None)
@given(before=filler, sep1=glue, email=emails(), after=filler, end=tail)
def test_emails_in_free_text_lose_their_mailbox(
    before: str, sep1: str, email: str, after: str, end: str
) -> None:
    out = redact(f"{before}{sep1}{email}{end} {after}")
    local = email.partition("@")[0]
    assert email not in out
    assert f"{local[0]}***@" in out


@settings(max_examples=300, deadline=None)
@given(before=filler, sep1=glue, phone=phones(), after=filler, end=tail)
def test_phone_numbers_in_free_text_lose_their_subscriber_digits(
    before: str, sep1: str, phone: str, after: str, end: str
) -> None:
    out = redact(f"{before}{sep1}{phone}{end} {after}")
    assert phone not in out
    # mask_phone keeps at most six characters in front and two at the end; the filler has no digits.
    assert len(re.sub(r"\D", "", out)) <= 8
    assert "*" in out


@settings(max_examples=300, deadline=None)
@given(before=filler, sep1=glue, token=tokens(), after=filler, end=tail)
def test_prefixed_secrets_in_free_text_are_dropped_whole(
    before: str, sep1: str, token: str, after: str, end: str
) -> None:
    out = redact(f"{before}{sep1}{token}{end} {after}")
    assert out == f"{before}{sep1}{REDACTED}{end} {after}"


@settings(max_examples=100, deadline=None)
@given(before=filler, after=filler, sep1=glue, end=tail)
def test_configured_secret_values_are_dropped_wherever_they_appear(
    before: str, after: str, sep1: str, end: str
) -> None:
    register_secrets([CONFIGURED])
    out = redact(f"{before}{sep1}{CONFIGURED}{end}{after}")
    assert CONFIGURED not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "jörg@müller.de",
        "anna@localhost",
        "0170.9996001",
        "+49.170.9996001",
        "(0170) 999-6001",
        "whsec_c2VjcmV0LXNpZ25pbmcta2V5",
        "cal_live_0123456789abcdef",
        "key_3f2a1b4c5d6e7f80",
    ],
)
def test_the_cases_named_in_issue_14(text: str) -> None:
    out = redact(f"Hinweis: {text} bitte")
    assert text not in out


def test_masking_still_leaves_ids_dates_and_numbers_alone() -> None:
    for text in (
        "call_7f3c9a2b1d", "2026-12-01T15:00:00+01:00", "am 01.12.2026", "192.168.100.200",
        "3.14159265", "v1.2.3", "idempotency_key_abc123def456", "task_queue_items",
    ):  # fmt: skip
        assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    ["a" * 50_000 + " @", "a." * 25_000 + "@", "1 " * 25_000, "1-" * 25_000, "+" + "1(" * 25_000],
    ids=["word-run", "dotted-run", "spaced-digits", "dashed-digits", "parenthesised-digits"],
)
def test_redaction_is_linear_on_hostile_text(text: str) -> None:
    import time

    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5.0  # quadratic would take minutes; the machine may be busy


def _redact_text_scanning_everything(text: str) -> str:
    """``_redact_text`` without its shortcuts: every pattern runs on every text, in the same order."""
    from urllib.parse import unquote

    from voicebook import logging as vl

    if not text:
        return text
    if "%40" in text or "%2B" in text or "%2b" in text:
        text = unquote(text)
    for pattern in vl._CONFIGURED:
        text = pattern.sub(REDACTED, text)
    text = vl._RETELL_SIGNATURE.sub(REDACTED, text)
    text = vl._BEARER.sub(rf"\1 {REDACTED}", text)
    text = vl._API_KEY.sub(REDACTED, text)
    text = vl._HEX_DIGEST.sub(REDACTED, text)
    text = vl._EMAIL.sub(r"\1***@\2", text)
    return vl._PHONE_OR_DATE.sub(vl._mask_phone_match, text)


fragments = st.sampled_from(
    [*"0123456789", "+", "-", ".", "/", "(", ")", " ", "_", "@", "%40", "%2B", "x", "Z", "T", ":", "\u0663",
     "\u00b2", "cal_", "cal_live_", "key_", "sk_", "rk_", "whsec_", "call_", "Bearer ", "v=", ",d=",
     "abc123", "a" * 64, "f" * 64, "2026-12-01", "salon.de", "ab12cd34"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(fragments, max_size=30).map("".join) | st.text(max_size=40))
def test_the_shortcuts_change_no_result(text: str) -> None:
    """Each pattern of ``_redact_text`` is skipped when the text lacks what every match needs; the result
    must be the one that running every pattern gives."""
    from voicebook.logging import _redact_text

    assert _redact_text.__wrapped__(text) == _redact_text_scanning_everything(text)


def test_word_characters_are_alphanumerics_and_underscore_and_digits_are_decimals() -> None:
    """``_may_hold_a_phone_number`` reads ``\\w`` as ``str.isalnum`` or ``_`` and ``\\d`` as
    ``str.isdecimal``: checked for every code point, against this Python's ``re`` and Unicode database."""
    word, digit = re.compile(r"\w"), re.compile(r"\d")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert (char.isalnum() or char == "_") == (word.match(char) is not None), hex(code)
        assert char.isdecimal() == (digit.match(char) is not None), hex(code)


# Single words: what ids, uids and names look like, with digits of other scripts (Arabic-Indic, Devanagari,
# fullwidth), digits that are not decimals (superscripts, fractions, Roman numerals) and any letter.
WORD_CHARACTERS = "0123456789abcdefABCDEF_xyzäß\u0663\u0966\uff11\u00b2\u00bd\u216b\u4e00"
single_words = (
    st.text(alphabet=WORD_CHARACTERS, min_size=1, max_size=40)
    | st.text(alphabet="0123456789\u0663\u0966\uff11\u00b2_", min_size=1, max_size=20)
    | st.text(alphabet="0123456789", min_size=1, max_size=20)
    | st.text(st.characters(categories=["L", "N", "Pc"]), min_size=1, max_size=30)
)


@settings(max_examples=1500, deadline=None)
@given(single_words | st.text(max_size=40))
def test_a_phone_scan_is_skipped_only_where_it_would_change_nothing(text: str) -> None:
    from voicebook.logging import _PHONE_OR_DATE, _mask_phone_match, _may_hold_a_phone_number

    if not _may_hold_a_phone_number(text):
        assert _PHONE_OR_DATE.sub(_mask_phone_match, text) == text


@settings(max_examples=1500, deadline=None)
@given(single_words)
def test_single_words_redact_as_the_full_scan_does(text: str) -> None:
    from voicebook.logging import _redact_text

    assert _redact_text.__wrapped__(text) == _redact_text_scanning_everything(text)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("0301234567", "0301****67"),  # a word of decimal digits only is still scanned, and masked
        ("\u0663" * 9, "\u0663\u0663\u0663****\u0663\u0663"),  # Arabic-Indic digits are decimals too
        ("1234567890123456", "1234567890123456"),  # more than E.164's 15 digits: an id
        ("1234567\u00b2", "1234567\u00b2"),  # a superscript is a digit but not a decimal: no match
        ("94309469d37042a68f1a594ef40b04dc", "94309469d37042a68f1a594ef40b04dc"),
        ("call_7f3c2a9e41b84d0c9a6e5d21b07", "call_7f3c2a9e41b84d0c9a6e5d21b07"),
    ],
)
def test_single_words_that_reach_or_skip_the_phone_scan(text: str, masked: str) -> None:
    assert redact(text) == masked


class _Text(str):
    """A ``str`` subclass: not the common case of ``redact_processor``, but still text."""


field_names = st.sampled_from(
    ["event", "call_id", "timestamp", "level", "logger", "api_key", "Authorization", "x_token", "notes"]
) | st.integers(0, 3) | st.none()  # fmt: skip
field_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=12)
    | (st.lists(fragments, max_size=8).map("".join)) | st.text(max_size=12).map(_Text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(field_names, field_values, max_size=8))
def test_the_processor_redacts_each_field_as_redact_does(event: dict[Any, Any]) -> None:
    """``redact_processor`` spells out ``redact``'s per-field decisions; the fields must come out the same."""
    from voicebook.logging import _SAFE_KEYS, _is_sensitive_key, redact_processor

    expected = {
        key: value if key in _SAFE_KEYS else REDACTED if _is_sensitive_key(key) else redact(value)
        for key, value in event.items()
    }
    out = redact_processor(None, "info", dict(event))
    assert list(out.items()) == list(expected.items())
