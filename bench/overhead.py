"""Benchmark 1 (+4): in-call overhead of ``book_appointment`` against the bare Cal.com create.

Both paths run over real HTTP against the same standalone sandbox process with a fixed injected latency
on ``bookings.create``:

* **ours**: client → ``voicebook serve`` (uvicorn subprocess) → write-ahead, Cal.com create, guards,
  record → answer;
* **bare**: client → sandbox ``POST /v2/bookings`` directly, the same body our client would send.

Each request is a distinct call id and a distinct (start, host) slot, so every one is a real booking.
Closed loop: ``c`` callers each send their next request as soon as the previous one answered.
Also reports the peak RSS (VmHWM) of the serving process after the run (benchmark 4).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import common
from bench.common import Report
from voicebook.calcom.schemas import BOOKINGS_API_VERSION, CreateBookingAttendee, CreateBookingInput
from voicebook.retell.signature import sign_body

BENCH = "overhead"
# Answers other than "booked" (e.g. upstream_error when the 25 s budget runs out under overload); their
# latency still counts, and the count is reported per level.
FAILURES: collections.Counter[str] = collections.Counter()


class Slots:
    """Hands out distinct (start) values: each start is used once per sandbox host."""

    def __init__(self, offset: int = 0) -> None:
        tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        self.base = tomorrow
        self.counter = itertools.count(offset)

    def next(self) -> tuple[int, datetime]:
        i = next(self.counter)
        day, rest = divmod(i // common.HOSTS, 46)  # 46 half-hour starts a day (00:00 .. 22:30)
        return i, self.base + timedelta(days=day, minutes=common.SLOT_MINUTES * rest)


def retell_body(i: int, start: datetime, prefix: str) -> bytes:
    body = {
        "name": "book_appointment",
        "call": {
            "call_id": f"call_{prefix}_{i}",
            "from_number": f"+49151{i % 100_000_000:08d}",
            "to_number": common.COMPANY_NUMBER,
            "direction": "inbound",
        },
        "args": {
            "service": common.SERVICE,
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "name": "Bench Caller",
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def bare_body(i: int, start: datetime, prefix: str) -> bytes:
    body = CreateBookingInput(
        start=start.isoformat().replace("+00:00", "Z"),
        event_type_id=common.EVENT_TYPE_ID,
        attendee=CreateBookingAttendee(
            name="Bench Caller",
            time_zone="UTC",
            email=f"booking+call_{prefix}_{i}@bench.example",
            phone_number=f"+49151{i % 100_000_000:08d}",
            language="de",
        ),
        metadata={"call_id": f"call_{prefix}_{i}", "attempt_id": f"bare-{prefix}-{i}"},
    )
    return json.dumps(body.wire(), separators=(",", ":")).encode()


Send = Callable[[httpx.AsyncClient, int, datetime], Awaitable[float]]


def ours_sender(app_base: str, prefix: str) -> Send:
    url = f"{app_base}/retell/functions/book_appointment"

    async def send(client: httpx.AsyncClient, i: int, start: datetime) -> float:
        raw = retell_body(i, start, prefix)
        headers = {
            "X-Retell-Signature": sign_body(raw, common.RETELL_KEY),
            "Content-Type": "application/json",
        }
        t0 = time.perf_counter()
        response = await client.post(url, content=raw, headers=headers)
        elapsed = time.perf_counter() - t0
        answer = response.json() if response.status_code == 200 else {}
        if answer.get("status") != "booked":
            FAILURES[answer.get("status", f"http {response.status_code}")] += 1
        return elapsed

    return send


def bare_sender(sandbox_base: str, prefix: str) -> Send:
    url = f"{sandbox_base}/v2/bookings"
    headers = {
        "Authorization": f"Bearer {common.CALCOM_KEY}",
        "cal-api-version": BOOKINGS_API_VERSION,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    async def send(client: httpx.AsyncClient, i: int, start: datetime) -> float:
        raw = bare_body(i, start, prefix)
        t0 = time.perf_counter()
        response = await client.post(url, content=raw, headers=headers)
        elapsed = time.perf_counter() - t0
        if response.status_code != 201:
            raise RuntimeError(f"bare create failed: {response.status_code} {response.text[:300]}")
        return elapsed

    return send


async def closed_loop(send: Send, slots: Slots, concurrency: int, total: int) -> list[float]:
    latencies: list[float] = []
    remaining = itertools.count()
    limits = httpx.Limits(max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def caller() -> None:
            while next(remaining) < total:
                i, start = slots.next()
                latencies.append(await send(client, i, start))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


def run_backend(
    report: Report,
    backend: str,
    db_url: str,
    levels: list[tuple[int, int]],
    latency_ms: float,
    tag: str,
    profile: Path | None = None,
) -> None:
    common.prepare_database(db_url)
    logs = common.WORK_DIR / f"logs-{tag}"
    with (
        common.sandbox_server(logs / "sandbox.log") as sandbox,
        common.app_server(db_url, sandbox, logs / "app.log", profile=profile) as (app, pid),
    ):
        httpx.post(
            f"{sandbox}/_sandbox/faults",
            json={
                "kind": "latency",
                "endpoint": "bookings.create",
                "times": None,
                "latency_seconds": latency_ms / 1000,
            },
        ).raise_for_status()
        slots = Slots()
        ours, bare = ours_sender(app, backend), bare_sender(sandbox, backend)
        asyncio.run(closed_loop(ours, slots, 5, 20))  # warm-up: imports, pools, caches
        asyncio.run(closed_loop(bare, slots, 5, 20))
        for concurrency, total in levels:
            httpx.delete(f"{sandbox}/_sandbox/bookings").raise_for_status()
            cpu0 = common.cpu_seconds(pid)
            FAILURES.clear()
            # Alternate halves so a drift (e.g. a growing table) hits both paths alike.
            o1 = asyncio.run(closed_loop(ours, slots, concurrency, total // 2))
            b1 = asyncio.run(closed_loop(bare, slots, concurrency, total // 2))
            o2 = asyncio.run(closed_loop(ours, slots, concurrency, total - total // 2))
            b2 = asyncio.run(closed_loop(bare, slots, concurrency, total - total // 2))
            o, b = o1 + o2, b1 + b2
            cpu_ms = (common.cpu_seconds(pid) - cpu0) * 1000 / len(o)
            om, op99 = common.median(o) * 1000, common.percentile(o, 99) * 1000
            bm, bp99 = common.median(b) * 1000, common.percentile(b, 99) * 1000
            prefix = f"{backend}.c{concurrency}"
            report.add(BENCH, f"{prefix}.ours_median", om, "ms")
            report.add(BENCH, f"{prefix}.ours_p99", op99, "ms")
            report.add(BENCH, f"{prefix}.bare_median", bm, "ms")
            report.add(BENCH, f"{prefix}.bare_p99", bp99, "ms")
            gate = concurrency == 50
            report.add(
                BENCH,
                f"{prefix}.ratio_median",
                om / bm,
                "x",
                target="<= 1.03" if gate else "",
                ok=(om / bm <= 1.03) if gate else None,
            )
            report.add(
                BENCH,
                f"{prefix}.ratio_p99",
                op99 / bp99,
                "x",
                target="<= 1.10" if gate else "",
                ok=(op99 / bp99 <= 1.10) if gate else None,
            )
            report.add(BENCH, f"{prefix}.ours_added_median", om - bm, "ms")
            report.add(BENCH, f"{prefix}.server_cpu_per_booking", cpu_ms, "ms")
            report.add(BENCH, f"{prefix}.ours_not_booked", sum(FAILURES.values()), "requests")
            if FAILURES:
                print(f"{prefix}: answers other than booked: {dict(FAILURES)}")
        if profile is not None:
            return
        rss_mb = common.vm_hwm_kb(pid) / 1024
        report.add("memory", f"{backend}.worker_peak_rss", rss_mb, "MB", target="<= 100", ok=rss_mb <= 100)


def main(argv: list[str] | None = None, report: Report | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--profile", type=Path, help="run the server under pyinstrument; text profile here")
    args = parser.parse_args(argv)
    per_level = {1: 20, 10: 100, 50: 300} if args.quick else {1: 60, 10: 400, 50: 1500}
    levels = [(c, per_level.get(c, 20 * c)) for c in (int(x) for x in args.levels.split(","))]
    report = report or Report()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with common.sqlite_database("voicebook_bench_overhead") as url:
                run_backend(report, backend, url, levels, args.latency_ms, backend, args.profile)
        else:
            with common.pg_database("voicebook_bench") as url:
                run_backend(report, backend, url, levels, args.latency_ms, backend, args.profile)
    return report


if __name__ == "__main__":
    print(main().table())
