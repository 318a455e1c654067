"""Load generator for the scale-out bench, run as its own process so its CPU is not the server's.

Closed loop with ``--concurrency`` callers; each request is a new booking (distinct call id and slot)
except a ``--retry-rate`` share that re-sends an earlier request verbatim (freshly signed), as Retell
does when it retries a function call. Prints one JSON object with counts and the elapsed time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import random
import time

import httpx

from bench import common
from bench.overhead import Slots, bare_body, retell_body
from voicebook.calcom.schemas import BOOKINGS_API_VERSION
from voicebook.retell.signature import sign_body


async def run(args: argparse.Namespace) -> dict[str, object]:
    slots = Slots(args.offset)
    rng = random.Random(7)
    sent: list[bytes] = []
    statuses: collections.Counter[str] = collections.Counter()
    issued = itertools.count()
    limits = httpx.Limits(
        max_connections=args.concurrency + 5, max_keepalive_connections=args.concurrency + 5
    )
    bare = args.bare
    url = f"{args.url}/v2/bookings" if bare else f"{args.url}/retell/functions/book_appointment"
    bare_headers = {
        "Authorization": f"Bearer {common.CALCOM_KEY}",
        "cal-api-version": BOOKINGS_API_VERSION,
        "Content-Type": "application/json",
    }

    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def caller() -> None:
            while next(issued) < args.total:
                if not bare and sent and rng.random() < args.retry_rate:
                    raw, kind = rng.choice(sent), "retry"
                else:
                    i, start = slots.next()
                    raw = (bare_body if bare else retell_body)(i, start, args.prefix)
                    sent.append(raw)
                    kind = "new"
                if bare:
                    response = await client.post(url, content=raw, headers=bare_headers)
                    statuses[f"{kind}:{response.status_code}"] += 1
                    continue
                headers = {"X-Retell-Signature": sign_body(raw, common.RETELL_KEY)}
                headers["Content-Type"] = "application/json"
                response = await client.post(url, content=raw, headers=headers)
                status = response.json().get("status", "?") if response.status_code == 200 else "http"
                statuses[f"{kind}:{status}:{response.status_code}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, "requests": args.total, "new": len(sent), "statuses": dict(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--total", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--retry-rate", type=float, default=0.10)
    parser.add_argument("--prefix", default="load")
    parser.add_argument("--offset", type=int, default=0, help="first slot number (keep runs apart)")
    parser.add_argument("--bare", action="store_true", help="post Cal.com creates to the sandbox directly")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
