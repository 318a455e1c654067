"""Run every benchmark: ``python -m bench [--quick] [--only floor,overhead,...]`` (names: ``SUITES``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from bench import cleanup, common, companies, floor, memory, overhead, scaleout

SUITES = {
    "floor": floor.main,
    "overhead": overhead.main,
    "scaleout": scaleout.main,
    "cleanup": cleanup.main,
    "companies": companies.main,
    "memory": memory.main,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes in all)")
    parser.add_argument("--only", default=",".join(SUITES), help="comma list of " + ", ".join(SUITES))
    args = parser.parse_args()
    info = {**common.machine(), "python": platform.python_version(), "loadavg_start": os.getloadavg()}
    print(json.dumps({"machine": info}), flush=True)
    report = common.Report()
    started = time.perf_counter()
    for name in args.only.split(","):
        SUITES[name](["--quick"] if args.quick else [], report)
    print(json.dumps({"loadavg_end": os.getloadavg(), "seconds": round(time.perf_counter() - started)}))
    print()
    print(report.table())
    for table in report.tables:
        print()
        print(table)


if __name__ == "__main__":
    main()
