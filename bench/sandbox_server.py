"""The Cal.com sandbox served standalone (control API on), for the benchmarks' out-of-process runs."""

from __future__ import annotations

import argparse

import uvicorn

from bench.common import CALCOM_KEY, RATE_LIMIT_PER_MINUTE
from voicebook.calcom.sandbox.server import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=RATE_LIMIT_PER_MINUTE,
        help="requests a minute the key may make (X-RateLimit-*-Default); Cal.com's default is 120",
    )
    args = parser.parse_args()
    sandbox = build(control_enabled=True, api_key=CALCOM_KEY)
    sandbox.rate_limit = args.rate_limit
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
