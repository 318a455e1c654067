"""Durable identities are stored and compared across deploys, so their exact form is pinned here.

A changed key or fingerprint format would make every retry of a call that straddles a deploy look like a
new request (a second booking) or a conflicting one; a changed per-call e-mail would let Cal.com's dedupe
merge two callers. Each test below kills mutants that `make mutation` found surviving (docs/TESTING.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from voicebook.booking.identity import attendee_email, fingerprint, idempotency_key

START = datetime(2030, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # 09:00 UTC


@pytest.fixture
def server_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run as a server whose local zone is not UTC (a VM left on its region's clock)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_idempotency_key_has_one_exact_utc_form() -> None:
    assert idempotency_key("call_687", 2563193, START) == "call_687|2563193|2030-03-05T09:00:00Z"
    assert idempotency_key("call_687", 2563193, START.astimezone(UTC)) == idempotency_key(
        "call_687", 2563193, START
    )


@pytest.mark.usefixtures("server_zone")
def test_idempotency_key_ignores_the_servers_local_zone() -> None:
    assert idempotency_key("call_687", 2563193, START) == "call_687|2563193|2030-03-05T09:00:00Z"


def test_fingerprint_is_a_sha256_of_the_normalised_fields() -> None:
    material = "\x1f".join(["jane doe", "jane@example.test", "+4915112345678", "window seat"])
    expected = hashlib.sha256(material.encode()).hexdigest()
    assert fingerprint(" Jane Doe ", "Jane@Example.TEST ", "+4915112345678", "window seat") == expected
    empty = hashlib.sha256("\x1f".join(["jane doe", "", "", ""]).encode()).hexdigest()
    assert fingerprint("Jane Doe", "", None, None) == empty


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (("Jane Doe", "jane@example.test", "+4915100000000", None), False),  # another phone
        (("Jane Doe", "jane@example.test", None, "other note"), False),  # another note
        (("Jane Doe", "other@example.test", None, None), False),  # another e-mail
        (("John Doe", "jane@example.test", None, None), False),  # another name
        (("JANE DOE ", " jane@EXAMPLE.test", None, ""), True),  # only case, blanks, None vs ""
    ],
)
def test_fingerprint_tells_requests_apart(other: tuple[str, str, str | None, str | None], same: bool) -> None:
    base = fingerprint("Jane Doe", "jane@example.test", None, None)
    assert (fingerprint(*other) == base) is same


def test_attendee_email_is_per_call_and_safe() -> None:
    template = "booking+{call_id}@{company_domain}"
    assert attendee_email("call 687/x", None, template, "salon.example") == "booking+call-687-x@salon.example"
    assert attendee_email("call_687", "", template, "salon.example") == "booking+call_687@salon.example"
    assert attendee_email("call_687", "jane@example.test", template, "salon.example") == "jane@example.test"
