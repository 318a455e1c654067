"""``python -m bench.logline``: CPU per structured log line, for the three lines of a booking.

A booking writes three INFO lines through module-level ``structlog.get_logger`` proxies, with the
request's context bound (``call_id``, ``function``, ``company``, ``attempt_id``): ``attempt.claimed``,
the guard verdict ``accepted`` (``audit._emit``) and ``booking.recorded``. Every booking brings a new
call id, attempt id and booking uid, so the values here are fresh on every iteration (the redaction memo
misses as it does in production) while the company and function name repeat. Lines go through the
production handler to a ``sys.stderr`` that is ``/dev/null``, so the figure includes the write and flush.

Prints one JSON line per figure, like the other benchmarks: the median and the best of ``--rounds``
rounds, in µs of CPU per line (this thread's CPU time, so other processes on the machine matter less;
the three calls only, not the binding).
Run it on two checkouts in one sitting to compare (``PYTHONPATH=<other>/src`` picks the other code).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import string
import time
import uuid
from collections.abc import Callable

import structlog

from bench.common import Report
from voicebook.logging import configure_logging

BENCH = "logline"
LINES_PER_BOOKING = 3
_BASE58 = "".join(c for c in string.ascii_letters + string.digits if c not in "0OIl")

# As the booking code holds them: module-level proxies, built before logging is configured.
_flow_log = structlog.get_logger("voicebook.booking")
_audit_log = structlog.get_logger("voicebook.booking")


def _booking_values(rng: random.Random) -> tuple[str, str, str]:
    """A new call id (Retell: ``call_`` + 27 hex), attempt id (32 hex) and Cal.com uid (22 base58)."""
    call_id = "call_" + uuid.UUID(int=rng.getrandbits(128)).hex[:27]
    attempt_id = uuid.UUID(int=rng.getrandbits(128)).hex
    booking_uid = "".join(rng.choices(_BASE58, k=22))
    return call_id, attempt_id, booking_uid


def _one_booking(call_id: str, attempt_id: str, booking_uid: str) -> None:
    """The three lines, with the arguments the booking path passes (flow.py, audit.py)."""
    _flow_log.info("attempt.claimed", call_id=call_id)
    _audit_log.info(
        "accepted",
        layer="ownership",
        reason="metadata carries our attempt id",
        call_id=call_id,
        attempt_id=attempt_id,
        calcom_booking_uid=booking_uid,
    )
    _flow_log.info("booking.recorded", calcom_booking_uid=booking_uid)


def _round(bookings: int, rng: random.Random, emit: Callable[[str, str, str], None]) -> float:
    """µs per line over ``bookings`` bookings; the context is bound outside the timed calls."""
    spent = 0
    for _ in range(bookings):
        call_id, attempt_id, booking_uid = _booking_values(rng)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(call_id=call_id, function="book_appointment")
        structlog.contextvars.bind_contextvars(company="salon-mitte", attempt_id=attempt_id)
        started = time.thread_time_ns()
        emit(call_id, attempt_id, booking_uid)
        spent += time.thread_time_ns() - started
    structlog.contextvars.clear_contextvars()
    return spent / 1000 / (bookings * LINES_PER_BOOKING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=3000, help="bookings per round (3 lines each)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        configure_logging("INFO")  # the production handler: writes to whatever sys.stderr is
        _round(300, rng, _one_booking)  # warm-up: imports, caches, the memo's steady state
        rounds = [_round(args.bookings, rng, _one_booking) for _ in range(args.rounds)]
    configure_logging("INFO")
    report = Report()
    report.add(BENCH, "us_per_line_median", statistics.median(rounds), "µs")
    report.add(BENCH, "us_per_line_best", min(rounds), "µs")


if __name__ == "__main__":
    main()
