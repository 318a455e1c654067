"""Micro-benchmark: CPU of our own layers around one Cal.com create-booking request, µs per call.

``python -m bench.calcom_create [--calls N] [--rounds R] [--profile]``

Everything below the HTTP client is canned: a transport that answers at once with the 201 the sandbox
sends for a create (body and headers taken from one real sandbox exchange at start-up, Cal.com's rate
headers added). The production stack is kept above it: ``build_http_client`` (``CalcomHTTPClient``), a
``BudgetedTransport`` over a ``LeasedBudget`` (a ``LocalBudget`` large enough never to refuse), and
``metrics.observe_calcom`` as the client's hook. Figures of CPU time (``time.process_time``, so a
busy box slows them less than the wall clock), each the median of ``R`` interleaved rounds:

* **gateway**: ``CalcomGateway.create_booking`` — what the booking flow pays;
* **client**: ``CalcomClient.create_booking`` with the same arguments;
* **floor**: ``http.post(url, json=wire, headers=...)`` + ``response.json()`` over the same client and
  transport, ``url`` the absolute URL the client sends to: httpx's share of the exchange, so
  ``gateway - floor`` is what our own layers cost (building the body, ``_attempt``, parsing, mapping);
* **bare**: the same with the relative ``"/v2/bookings"``, the minimal implementation: httpx then joins
  the URL to ``base_url`` for every request, which the client does once (``CalcomClient._url``);
* **in send** / **outside send**: the gateway's CPU inside ``AsyncClient.send`` (httpx's sending, the
  budget transport, the canned answer) and outside it (building the body and the request, ``_attempt``,
  parsing, mapping), from a second stack whose ``send`` is timed (``SendClock``).

``--profile`` runs the gateway loop under cProfile and prints the top functions by inclusive time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import Report
from voicebook import metrics
from voicebook.booking.types import Attendee, BookingRequest
from voicebook.calcom import CalcomClient, CalcomGateway, build_http_client
from voicebook.calcom.budget import BudgetedTransport, LeasedBudget, LocalBudget
from voicebook.calcom.sandbox import Sandbox, SandboxClock, SandboxEventType, SandboxHost
from voicebook.calcom.schemas import BOOKINGS_API_VERSION

BASE_URL = "https://api.cal.com"
API_KEY = "cal_live_0123456789abcdef0123456789abcdef"
NOW = datetime(2030, 3, 4, 7, 0, tzinfo=UTC)
START = datetime(2030, 3, 5, 9, 0, tzinfo=UTC)
HOST = SandboxHost(1, "Alice Host", "alice@salon.example", "alice", "Europe/Berlin")
EVENT_TYPE = SandboxEventType(id=9100001, slug="haircut", length_minutes=30, hosts=[HOST])
REQUEST = BookingRequest(
    event_type_id=EVENT_TYPE.id,
    start=START,
    attendee=Attendee(
        "Jane Caller", "booking+call_abc123@salon.example", "+4915112345678", "Europe/Berlin", "de"
    ),
    metadata={"call_id": "call_5f8e0a4b2c1d4e6f8a9b", "attempt_id": "att_0f1e2d3c4b5a69788796"},
)
RATE_HEADERS = {
    "x-ratelimit-limit-default": "120",
    "x-ratelimit-remaining-default": "119",
    "x-ratelimit-reset-default": "60",
}


async def sandbox_answer() -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers the sandbox answers a create with (our own client's request, so realistic)."""
    sandbox = Sandbox(clock=SandboxClock(NOW), event_types=[EVENT_TYPE])
    caught: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        caught.append(response)

    transport = httpx.ASGITransport(app=sandbox.app)
    async with build_http_client(BASE_URL, API_KEY, 5.0, transport=transport) as http:
        http.event_hooks["response"].append(keep)
        await CalcomGateway(CalcomClient(http)).create_booking(REQUEST)
    (response,) = caught
    assert response.status_code == 201, response.text
    headers = [(k, v) for k, v in response.headers.items() if k != "content-length"]
    return response.content, headers + list(RATE_HEADERS.items())


class CannedTransport(httpx.AsyncBaseTransport):
    """Answers every request at once with the same 201, its body as a stream (as a socket delivers it)."""

    def __init__(self, body: bytes, headers: list[tuple[str, str]]) -> None:
        self._body, self._headers = body, headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers=self._headers, stream=_Body(self._body))


class _Body(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> Any:
        yield self._body


def stack(body: bytes, headers: list[tuple[str, str]]) -> tuple[httpx.AsyncClient, CalcomGateway]:
    budget = LeasedBudget(LocalBudget(capacity=10**9, per_seconds=60))
    transport = BudgetedTransport(CannedTransport(body, headers), budget, "bench-key")
    http = build_http_client(BASE_URL, API_KEY, 10.0, transport=transport)
    return http, CalcomGateway(CalcomClient(http, on_response=metrics.observe_calcom))


Call = Callable[[], Awaitable[object]]


def calls(http: httpx.AsyncClient, gateway: CalcomGateway) -> dict[str, Call]:
    client: CalcomClient = gateway._client
    attendee = REQUEST.attendee

    async def via_gateway() -> object:
        return await gateway.create_booking(REQUEST)

    async def via_client() -> object:
        return await client.create_booking(
            event_type_id=REQUEST.event_type_id,
            start=REQUEST.start,
            name=attendee.name,
            time_zone=attendee.time_zone,
            email=attendee.email,
            phone_number=attendee.phone,
            language=attendee.language,
            metadata=dict(REQUEST.metadata),
        )

    wire = {
        "start": "2030-03-05T09:00:00Z",
        "eventTypeId": REQUEST.event_type_id,
        "attendee": {
            "name": attendee.name,
            "timeZone": attendee.time_zone,
            "email": attendee.email,
            "phoneNumber": attendee.phone,
            "language": attendee.language,
        },
        "metadata": dict(REQUEST.metadata),
    }
    version = {"cal-api-version": BOOKINGS_API_VERSION}
    absolute = http.base_url.join("/v2/bookings")

    async def floor() -> object:
        response = await http.post(absolute, json=wire, headers=version)
        return response.json()

    async def bare() -> object:
        response = await http.post("/v2/bookings", json=wire, headers=version)
        return response.json()

    return {"gateway": via_gateway, "client": via_client, "floor": floor, "bare": bare}


async def per_call_us(call: Call, n: int) -> float:
    """CPU time of the process per call: other work on a shared box slows the wall clock, not this."""
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1e6


class SendClock:
    """Adds up the CPU time spent inside ``http.send`` (httpx, the budget and the canned transport under
    it): what a create costs outside it is what our layers and httpx's ``build_request`` add."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.seconds = 0.0
        self._send = http.send
        http.send = self._timed  # type: ignore[method-assign]

    async def _timed(self, *args: Any, **kwargs: Any) -> httpx.Response:
        started = time.process_time()
        try:
            return await self._send(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - started


async def measure(n: int, rounds: int) -> dict[str, float]:
    body, headers = await sandbox_answer()
    http, gateway = stack(body, headers)
    timed_http, timed_gateway = stack(body, headers)
    clock = SendClock(timed_http)
    split = calls(timed_http, timed_gateway)["gateway"]
    async with http, timed_http:
        named = calls(http, gateway)
        for call in [*named.values(), split]:  # warm up: imports, caches, the lease's slow start
            await per_call_us(call, 200)
        samples: dict[str, list[float]] = {name: [] for name in [*named, "in send", "outside send"]}
        for _ in range(rounds):  # interleaved, so a noisy moment hits all alike
            for name, call in named.items():
                samples[name].append(await per_call_us(call, n))
            clock.seconds = 0.0
            total = await per_call_us(split, n)
            samples["in send"].append(clock.seconds / n * 1e6)
            samples["outside send"].append(total - clock.seconds / n * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


async def profile(n: int, top: int) -> None:
    body, headers = await sandbox_answer()
    http, gateway = stack(body, headers)
    async with http:
        call = calls(http, gateway)["gateway"]
        await per_call_us(call, 200)
        profiler = cProfile.Profile()
        profiler.enable()
        await per_call_us(call, n)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway loop instead")
    parser.add_argument("--top", type=int, default=45, help="rows of the profile")
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args.calls, args.top))
        return
    figures = asyncio.run(measure(args.calls, args.rounds))
    figures["ours (gateway - floor)"] = figures["gateway"] - figures["floor"]
    report = Report()
    for name, value in figures.items():
        report.add("calcom_create", name, value, "us")


if __name__ == "__main__":
    main()
