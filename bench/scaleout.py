"""Benchmark 2: CPU per booking with 1, 2 and 4 ``voicebook serve`` workers on PostgreSQL.

The sandbox runs standalone (zero latency) and the load generator in its own process. 10 % of the
requests re-send an earlier request (Retell's retries). After each run: no Cal.com booking uid twice
in ``appointments``, and every booking the sandbox holds is recorded in ``appointments``.

The figure that measures the service is the CPU (user+sys of the server and all its workers, from
``/proc``) per new booking: flat across 1/2/4 workers means the workers do not contend (no lock, no
shared hot row). Bookings per second are printed too, but they measure this shared 2-core machine
(PostgreSQL, the stand-in and the load generator compete for the same cores), not the service, so they
carry no target. For the ceiling, the same load generator also posts Cal.com creates to the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time

import httpx

from bench import common
from bench.common import Report

BENCH = "scaleout"
WARM_SLOTS = 1000
RECONCILE_WAIT_SECONDS = 31.0


def active_uids(sandbox: str) -> set[str]:
    data = httpx.get(f"{sandbox}/_sandbox/bookings", timeout=60).json()["data"]
    return {b["uid"] for b in data if b.get("status") not in ("cancelled", "rejected")}


def load(
    url: str, total: int, concurrency: int, prefix: str, *, bare: bool = False, offset: int = 0
) -> dict[str, object]:
    args = [common.PYTHON, "-m", "bench.loadgen", "--url", url, "--total", str(total)]
    args += ["--concurrency", str(concurrency), "--prefix", prefix, "--offset", str(offset)]
    if bare:
        args.append("--bare")
    out = subprocess.run(
        args, env={**common.os.environ, "PYTHONPATH": str(common.ROOT)}, capture_output=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


async def check_database(db_url: str, sandbox_uids: set[str]) -> tuple[int, int, int]:
    """(duplicate uid groups, appointments, sandbox bookings missing from appointments)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        dups = await conn.fetch(
            "SELECT calcom_booking_uid, count(*) FROM appointments "
            "GROUP BY calcom_booking_uid HAVING count(*) > 1"
        )
        recorded = {r[0] for r in await conn.fetch("SELECT calcom_booking_uid FROM appointments")}
    finally:
        await conn.close()
    return len(dups), len(recorded), len(sandbox_uids - recorded)


def run_workers(report: Report, workers: int, total: int, concurrency: int) -> float:
    """Run the load against ``workers`` workers; returns the CPU ms per new booking."""
    with common.pg_database("voicebook_bench") as db_url:
        common.prepare_database(db_url)
        logs = common.WORK_DIR / f"logs-scaleout-w{workers}"
        with (
            common.sandbox_server(logs / "sandbox.log") as sandbox,
            common.app_server(db_url, sandbox, logs / "app.log", workers=workers) as (app, pid),
        ):
            load(app, 50 * workers, 10, f"warm{workers}")  # warm every worker's pools and caches
            pids = common.tree_pids(pid)
            cpu0 = common.tree_cpu_seconds(pids)
            result = load(app, total, concurrency, f"w{workers}", offset=WARM_SLOTS)
            cpu = common.tree_cpu_seconds(pids) - cpu0
            uids = active_uids(sandbox)
            _, _, missing_before = asyncio.run(check_database(db_url, uids))
            if missing_before:
                # Attempts cut off mid-flight (budget/pool timeouts under overload) are the reconciler's
                # job; its claim waits for the attempt lock to expire.
                time.sleep(RECONCILE_WAIT_SECONDS)
                subprocess.run(
                    [str(common.VENV_BIN / "voicebook"), "reconcile"],
                    env={**common.os.environ, **common.app_env(db_url, sandbox)},
                    cwd=common.WORK_DIR,
                    capture_output=True,
                    check=False,
                )
                uids = active_uids(sandbox)
        dup_groups, appointments, missing = asyncio.run(check_database(db_url, uids))
    elapsed = float(result["elapsed"])  # type: ignore[arg-type]
    statuses: dict[str, int] = result["statuses"]  # type: ignore[assignment]
    booked_new = sum(v for k, v in statuses.items() if k.startswith("new:booked"))
    retries = sum(v for k, v in statuses.items() if k.startswith("retry:"))
    print(f"workers={workers} statuses={statuses}")
    rate = booked_new / elapsed
    tag = f"pg.workers{workers}"
    cpu_ms = cpu * 1000 / max(booked_new, 1)
    report.add(BENCH, f"{tag}.server_processes", len(pids), "processes")
    report.add(BENCH, f"{tag}.cpu_ms_per_booking", cpu_ms, "ms")
    report.add(BENCH, f"{tag}.bookings_per_s_per_core", 1000 / cpu_ms, "1/s")
    report.add(BENCH, f"{tag}.bookings_per_s", rate, "1/s")
    report.add(BENCH, f"{tag}.requests_per_s", total / elapsed, "1/s")
    report.add(BENCH, f"{tag}.retries_sent", retries, "requests")
    report.add(BENCH, f"{tag}.not_booked_new", int(result["new"]) - booked_new, "requests")  # type: ignore[call-overload]
    report.add(BENCH, f"{tag}.duplicate_uid_groups", dup_groups, "groups", target="0", ok=dup_groups == 0)
    report.add(BENCH, f"{tag}.unrecorded_before_reconcile", missing_before, "bookings")
    report.add(BENCH, f"{tag}.unrecorded_after_reconcile", missing, "bookings", target="0", ok=missing == 0)
    report.add(BENCH, f"{tag}.sandbox_bookings", len(uids), "bookings")
    report.add(BENCH, f"{tag}.appointments", appointments, "rows")
    return cpu_ms


def bare_ceiling(report: Report, total: int, concurrency: int) -> None:
    with common.sandbox_server(common.WORK_DIR / "logs-scaleout-bare" / "sandbox.log") as sandbox:
        load(sandbox, 50, 10, "warm", bare=True)
        result = load(sandbox, total, concurrency, "bare", bare=True)
    report.add(BENCH, "sandbox_alone.creates_per_s", total / float(result["elapsed"]), "1/s")  # type: ignore[arg-type]


def main(argv: list[str] | None = None, report: Report | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--total", type=int, help="requests per run (default 2000; quick 600)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args(argv)
    total = args.total or (600 if args.quick else 2000)
    report = report or Report()
    bare_ceiling(report, total, args.concurrency)
    cpu = {w: run_workers(report, w, total, args.concurrency) for w in map(int, args.workers.split(","))}
    one = cpu.get(1)
    for workers, ms in cpu.items():
        if one and workers != 1:
            # CPU per booking with N workers over 1 worker: ≈ 1 is flat (no contention between workers).
            ratio = ms / one
            report.add(
                BENCH, f"pg.cpu_per_booking_{workers}_over_1", ratio, "x", target="<= 1.3", ok=ratio <= 1.3
            )
    return report


if __name__ == "__main__":
    print(main().table())
