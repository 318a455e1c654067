"""Benchmark: a serving worker's memory, and which imports it is made of.

``python -m bench.memory`` (or ``python -m bench --only memory``) reports:

* ``import_rss``: VmRSS of a fresh interpreter after ``import voicebook.app`` (median of three);
* ``startup_rss``: VmRSS of ``voicebook serve --workers 1`` (real Cal.com configured: the sandbox served
  over HTTP, PostgreSQL) once ``/healthz`` answers, i.e. after the lifespan started;
* ``peak_rss`` / ``rss_after_load``: VmHWM and VmRSS of that worker after ``--total`` bookings (4 callers);
* the packages whose import allocates the most (``--top``): tracemalloc bytes allocated while each
  module's body ran (its code objects, classes, tables), summed per top-level package. These are Python
  allocations, not RSS (shared libraries and allocator slack are not in them), so read them as shares.

With ``--workers 1`` uvicorn serves in the ``voicebook`` process itself, so the worker's memory includes
what the command line imported on its way to ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx

from bench import common, overhead
from bench.common import Report

BENCH = "memory"

_IMPORT_RSS = """
import voicebook.app
from pathlib import Path
status = Path("/proc/self/status").read_text().splitlines()
print(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
"""


def status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def import_rss_mb(runs: int = 3) -> float:
    values = [
        int(subprocess.run([common.PYTHON, "-c", _IMPORT_RSS], check=True, capture_output=True).stdout)
        for _ in range(runs)
    ]
    return common.median(values) / 1024


def import_costs(module: str = "voicebook.app") -> dict[str, float]:
    """Bytes allocated while each module's body ran (tracemalloc), per top-level package; fresh process."""
    out = subprocess.run(
        [common.PYTHON, "-m", "bench.importcost", module],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(common.ROOT)},
    ).stdout
    return {str(k): float(v) for k, v in json.loads(out).items()}


def serve_figures(report: Report, total: int) -> None:
    with common.pg_database("voicebook_bench_memory") as url:
        common.prepare_database(url)
        logs = common.WORK_DIR / "logs-memory"
        with (
            common.sandbox_server(logs / "sandbox.log") as sandbox,
            common.app_server(url, sandbox, logs / "app.log") as (base, pid),
        ):
            started = status_kb(pid)
            report.add(BENCH, "startup_rss", started["VmRSS"] / 1024, "MB")
            report.add(BENCH, "startup_peak_rss", started["VmHWM"] / 1024, "MB")
            slots = overhead.Slots()
            send = overhead.ours_sender(base, "memory")
            overhead.FAILURES.clear()
            asyncio.run(overhead.closed_loop(send, slots, 4, total))
            httpx.get(f"{base}/metrics", timeout=10.0)  # a scrape, as Prometheus would do
            after = status_kb(pid)
            failed = sum(overhead.FAILURES.values())
            report.add(BENCH, "not_booked", failed, "requests", target="0", ok=failed == 0)
            report.add(BENCH, "rss_after_load", after["VmRSS"] / 1024, "MB")
            peak = after["VmHWM"] / 1024
            report.add(BENCH, "peak_rss", peak, "MB", target="<= 100", ok=peak <= 100)


def main(argv: list[str] | None = None, report: Report | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--total", type=int, help="bookings after start-up (default 400; quick 200)")
    parser.add_argument("--top", type=int, default=15, help="packages listed by import cost")
    args = parser.parse_args(argv)
    total = args.total or (200 if args.quick else 400)
    report = report or Report()
    report.add(BENCH, "import_rss", import_rss_mb(), "MB")
    costs = import_costs()
    lines = [
        f"import voicebook.app: Python allocations per package (top {args.top} of {len(costs)}, "
        f"{sum(costs.values()) / 1e6:.1f} MB in all)",
        "| package | MB |",
        "|---|---|",
    ]
    lines += [f"| {name} | {size / 1e6:.2f} |" for name, size in list(costs.items())[: args.top]]
    report.tables.append("\n".join(lines))
    serve_figures(report, total)
    return report


if __name__ == "__main__":
    result = main()
    print()
    print(result.table())
    for table in result.tables:
        print()
        print(table)
