"""The floor: a minimal implementation of the booking protocol, measured side by side with voicebook.

``python -m bench.floor serve --db URL --calcom URL --port N`` runs the floor server: Starlette, asyncpg
(PostgreSQL) or aiosqlite (SQLite) without an ORM, the Retell HMAC check (the scheme of
``voicebook.retell.signature``: ``v=<ms>,d=<hex HMAC-SHA256(key, body + ms)>``, five minutes either
way), an insert-or-nothing write-ahead attempt committed (state ``sent``) *before* the Cal.com POST,
one transaction that inserts the appointment and moves the attempt to ``recorded`` (compare-and-set),
and a JSON answer. It keeps the write-ahead, so it is the cheapest thing that still never loses a
booking; it has none of voicebook's guards, answers in words, metrics or logs. It uses voicebook's
schema (migrated and loaded by the CLI) so both write the same rows with the same indexes. It lives in
the bench only: nothing in ``src`` imports it.

``python -m bench.floor`` (or ``python -m bench --only floor``) runs both servers against one Cal.com
stand-in (the sandbox, no latency) and reports, per backend, voicebook / floor in the same run:

* CPU ms per booking: the server process's user+sys (``/proc``) / bookings, closed loop, 4 callers;
* bookings per second per core: 1000 / CPU ms;
* commits (and rollbacks) per booking (PostgreSQL): ``pg_stat_database`` of each server's own database,
  read after every backend flushed its counters (PostgreSQL 15 flushes an idle backend's pending
  statistics within 10 s; ``pg_stat_force_next_flush()`` only acts on the calling backend, so the bench
  waits and then polls until the counters stand still, reading from another database each time, with a
  fresh snapshot, so the reading itself is not counted);
* added latency at one caller (median, p99) over a bare Cal.com create to the same stand-in;
* peak RSS of voicebook's worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench import common, overhead
from bench.common import Report
from bench.overhead import Slots, bare_sender, closed_loop, ours_sender

BENCH = "floor"
FIVE_MINUTES_MS = 5 * 60 * 1000
LOCK_SECONDS = 30

# --- the floor server --------------------------------------------------------------------------------

INSERT_ATTEMPT = """
INSERT INTO booking_attempts (public_id, idempotency_key, call_id, company_id, service_id, event_type_id,
    start_at, state, fingerprint, attendee_name, attendee_email, attendee_phone, tries, intent,
    first_sent_at, locked_until, created_at, updated_at)
VALUES ({p}) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"""
INSERT_APPOINTMENT = """
INSERT INTO appointments (company_id, service_id, call_id, attempt_id, calcom_booking_uid, event_type_id,
    start_at, end_at, status, source, attendee_name, attendee_email, created_at, updated_at)
VALUES ({p}) RETURNING id"""
MOVE_RECORDED = """
UPDATE booking_attempts SET state = 'recorded', calcom_booking_uid = {0}, locked_until = NULL,
    answer_snapshot = {1}, updated_at = {2} WHERE id = {3} AND state = 'sent'"""
MOVE_FAILED = """
UPDATE booking_attempts SET state = 'failed', locked_until = NULL, updated_at = {0}
WHERE id = {1} AND state = 'sent'"""
ATTEMPT_STATE = "SELECT state, answer_snapshot FROM booking_attempts WHERE idempotency_key = {0}"
OFFERINGS = """
SELECT p.number, c.id, c.timezone, c.email_domain, s.id, s.name, s.event_type_id
FROM phone_numbers p JOIN companies c ON c.id = p.company_id JOIN services s ON s.company_id = c.id"""


def _pg(sql: str, n: int = 0) -> str:
    return sql.format(*(f"${i}" for i in range(1, 5)), p=", ".join(f"${i}" for i in range(1, n + 1)))


def _lite(sql: str, n: int = 0) -> str:
    return sql.format(*("?" for _ in range(4)), p=", ".join("?" for _ in range(n)))


class Store:
    """The three statements of a booking, for one backend (no ORM, no query builder)."""

    async def offerings(self) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def claim(self, values: tuple[Any, ...]) -> int | None:
        raise NotImplementedError

    async def state(self, key: str) -> tuple[str, Any] | None:
        raise NotImplementedError

    async def record(
        self, attempt_id: int, appointment: tuple[Any, ...], uid: str, answer: str
    ) -> int | None:
        raise NotImplementedError

    async def fail(self, attempt_id: int) -> None:
        raise NotImplementedError

    def ts(self, value: datetime) -> Any:
        return value


class PgStore(Store):
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def offerings(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.pool.fetch(OFFERINGS)]

    async def claim(self, values: tuple[Any, ...]) -> int | None:
        return await self.pool.fetchval(_pg(INSERT_ATTEMPT, 18), *values)  # type: ignore[no-any-return]

    async def state(self, key: str) -> tuple[str, Any] | None:
        row = await self.pool.fetchrow(_pg(ATTEMPT_STATE), key)
        return (row[0], row[1]) if row else None

    async def record(
        self, attempt_id: int, appointment: tuple[Any, ...], uid: str, answer: str
    ) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.execute(_pg(MOVE_RECORDED), uid, answer, appointment[-1], attempt_id)
            if moved != "UPDATE 1":
                return None
            return await conn.fetchval(_pg(INSERT_APPOINTMENT, 14), *appointment)  # type: ignore[no-any-return]

    async def fail(self, attempt_id: int) -> None:
        await self.pool.execute(_pg(MOVE_FAILED), datetime.now(UTC), attempt_id)


class LiteStore(Store):
    """One aiosqlite connection in autocommit mode; a lock makes each transaction whole."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    def ts(self, value: datetime) -> Any:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    async def offerings(self) -> list[tuple[Any, ...]]:
        async with self.conn.execute(OFFERINGS) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def claim(self, values: tuple[Any, ...]) -> int | None:
        async with self.lock, self.conn.execute(_lite(INSERT_ATTEMPT, 18), values) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def state(self, key: str) -> tuple[str, Any] | None:
        async with self.conn.execute(_lite(ATTEMPT_STATE), (key,)) as cur:
            row = await cur.fetchone()
        return (row[0], row[1]) if row else None

    async def record(
        self, attempt_id: int, appointment: tuple[Any, ...], uid: str, answer: str
    ) -> int | None:
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = await self.conn.execute(
                    _lite(MOVE_RECORDED), (uid, answer, appointment[-1], attempt_id)
                )
                if cur.rowcount != 1:
                    await self.conn.execute("ROLLBACK")
                    return None
                async with self.conn.execute(_lite(INSERT_APPOINTMENT, 14), appointment) as cur:
                    row = await cur.fetchone()
                await self.conn.execute("COMMIT")
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
        return int(row[0])

    async def fail(self, attempt_id: int) -> None:
        async with self.lock:
            await self.conn.execute(_lite(MOVE_FAILED), (self.ts(datetime.now(UTC)), attempt_id))


@dataclass(frozen=True)
class Offer:
    company_id: int
    tz: ZoneInfo
    email_domain: str
    service_id: int
    service: str
    event_type_id: int


def verify(raw: bytes, header: str | None, key: bytes) -> bool:
    """Retell's symmetric scheme: ``v=<ms>,d=<64 lowercase hex>``, HMAC-SHA256 over body + ms."""
    if not header or not header.startswith("v=") or ",d=" not in header:
        return False
    stamp, _, digest = header[2:].partition(",d=")
    if not stamp.isdigit() or len(digest) != 64:
        return False
    if abs(time.time_ns() // 1_000_000 - int(stamp)) > FIVE_MINUTES_MS:
        return False
    expected = hmac.new(key, raw + stamp.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


def build_app(db_url: str, calcom_base: str, retell_key: str, calcom_key: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    key = retell_key.encode()
    state: dict[str, Any] = {}

    async def lifespan(_app: Any) -> Any:
        if db_url.startswith("sqlite"):
            import aiosqlite

            conn = await aiosqlite.connect(db_url.split("///", 1)[1], isolation_level=None)
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA busy_timeout=30000")
            store: Store = LiteStore(conn)
        else:
            import asyncpg

            class NoReset(asyncpg.Connection):  # type: ignore[misc]
                """The floor never changes session state, so a released connection needs no reset query
                (asyncpg's default ``RESET ALL; UNLISTEN *; …`` would be one more transaction per release)."""

                def get_reset_query(self) -> str:
                    return ""

            pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10, connection_class=NoReset)
            store = PgStore(pool)
        # The company and its services, once per process (voicebook caches them for 10 s).
        offers = {}
        for number, cid, tz, domain, sid, sname, etid in await store.offerings():
            offers[(number, sname.casefold())] = Offer(cid, ZoneInfo(tz), domain, sid, sname, etid)
        http = httpx.AsyncClient(
            base_url=calcom_base,
            headers={"Authorization": f"Bearer {calcom_key}", "cal-api-version": "2024-08-13"},
            timeout=10.0,
        )
        state.update(store=store, offers=offers, http=http)
        try:
            yield
        finally:
            await http.aclose()
            if isinstance(store, PgStore):
                await store.pool.close()
            elif isinstance(store, LiteStore):
                await store.conn.close()

    def answer(status: str, message: str, **extra: Any) -> Response:
        return JSONResponse({"ok": status == "booked", "status": status, "message": message, **extra})

    async def book(request: Request) -> Response:
        raw = await request.body()
        if not verify(raw, request.headers.get("x-retell-signature"), key):
            return Response(status_code=401)
        body = json.loads(raw)
        call, args = body["call"], body["args"]
        store: Store = state["store"]
        offer: Offer | None = state["offers"].get((call.get("to_number"), str(args["service"]).casefold()))
        if offer is None:
            return answer("not_found", "Diese Leistung bieten wir nicht an.")
        start = datetime.fromisoformat(args["start"]).replace(tzinfo=offer.tz).astimezone(UTC)
        call_id, name = call["call_id"], str(args["name"])
        idem = f"{call_id}:{offer.event_type_id}:{start.isoformat()}"
        email = f"booking+{call_id}@{offer.email_domain}"
        fp = hashlib.sha256(f"{name}|{email}".encode()).hexdigest()
        public_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        ts = store.ts
        # Write ahead: the intent is durable (state sent, locked) before Cal.com is asked.
        attempt_id = await store.claim(
            (public_id, idem, call_id, offer.company_id, offer.service_id, offer.event_type_id, ts(start),
             "sent", fp, name, email, call.get("from_number"), 1, "book", ts(now),
             ts(now + timedelta(seconds=LOCK_SECONDS)), ts(now), ts(now))
        )  # fmt: skip
        if attempt_id is None:  # a retry: replay what the first try recorded, or say it is in flight
            known = await store.state(idem)
            if known and known[0] == "recorded":
                return answer("booked", "Der Termin ist gebucht.", replayed=True)
            return answer("in_progress", "Einen Moment, die Buchung läuft noch.")
        wire = {
            "start": start.isoformat().replace("+00:00", "Z"),
            "eventTypeId": offer.event_type_id,
            "attendee": {
                "name": name,
                "timeZone": str(offer.tz),
                "email": email,
                "phoneNumber": call.get("from_number"),
                "language": "de",
            },
            "metadata": {"call_id": call_id, "attempt_id": public_id},
        }
        response = await state["http"].post("/v2/bookings", json=wire)
        if response.status_code != 201:
            await store.fail(attempt_id)
            return answer("slot_unavailable", "Der Termin ist leider nicht mehr frei.")
        data = response.json()["data"]
        uid = data["uid"]
        booked_start = datetime.fromisoformat(data["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(data["end"].replace("Z", "+00:00"))
        done = datetime.now(UTC)
        snapshot = json.dumps(
            {"status": "booked", "calcom_booking_uid": uid, "start": booked_start.isoformat()}
        )
        appointment_id = await store.record(
            attempt_id,
            (offer.company_id, offer.service_id, call_id, attempt_id, uid, offer.event_type_id,
             ts(booked_start), ts(end), "booked", "voicebook", name, email, ts(done), ts(done)),
            uid,
            snapshot,
        )  # fmt: skip
        if appointment_id is None:
            return answer("in_progress", "Einen Moment, die Buchung läuft noch.")
        local = booked_start.astimezone(offer.tz)
        return answer(
            "booked",
            f"Ich habe {offer.service} am {local:%d.%m.%Y} um {local:%H:%M} Uhr für Sie gebucht.",
            appointment={
                "id": appointment_id,
                "calcom_booking_uid": uid,
                "start": local.isoformat(),
                "service": offer.service,
            },
        )

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/retell/functions/book_appointment", book, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(argv: list[str]) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="the floor server")
    parser.add_argument("--db", required=True, help="postgresql://… or sqlite:///path")
    parser.add_argument("--calcom", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = build_app(args.db, args.calcom, common.RETELL_KEY, common.CALCOM_KEY)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


# --- the side-by-side bench --------------------------------------------------------------------------


@contextlib.contextmanager
def floor_server(db_url: str, calcom_base: str, log: Path) -> Iterator[tuple[str, int]]:
    port = common.free_port()
    args = [common.PYTHON, "-m", "bench.floor", "serve", "--db", db_url, "--calcom", calcom_base]
    with common.spawn([*args, "--port", str(port)], env={"PYTHONPATH": str(common.ROOT)}, log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        common.wait_http(f"{base}/healthz", proc=proc)
        yield base, proc.pid


async def _without_autovacuum(url: str) -> None:
    """Autovacuum and autoanalyze run transactions in the database they clean, counted as its commits
    (seen: +0.07 per booking on both sides of a busy run); the scratch tables do without them."""
    import asyncpg

    conn = await asyncpg.connect(common.asyncpg_dsn(url))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in tables:
            await conn.execute(f'ALTER TABLE "{table}" SET (autovacuum_enabled = off)')
    finally:
        await conn.close()


async def _pg_counters(names: list[str]) -> dict[str, tuple[int, int]]:
    import asyncpg

    conn = await asyncpg.connect(common.PG_URL)  # another database: reading is not counted
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = await conn.fetch(
            "SELECT datname, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = ANY($1)", names
        )
    finally:
        await conn.close()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def budget_leases(base: str) -> float:
    """The worker's ``voicebook_calcom_budget_leases_total``: how often it asked the shared budget store."""
    text = httpx.get(f"{base}/metrics", timeout=10).raise_for_status().text
    for line in text.splitlines():
        if line.startswith("voicebook_calcom_budget_leases_total "):
            return float(line.split()[1])
    # Code from before the counter (``VOICEBOOK_BENCH_SRC``): the booking's own share is unknown.
    return math.nan


def flushed_counters(names: list[str]) -> dict[str, tuple[int, int]]:
    """Commit/rollback counters once every backend of these databases has flushed (PostgreSQL ≥ 15)."""
    time.sleep(11.0)  # an idle backend flushes its pending statistics within PGSTAT_IDLE_INTERVAL (10 s)
    last = asyncio.run(_pg_counters(names))
    for _ in range(10):
        time.sleep(1.5)
        now = asyncio.run(_pg_counters(names))
        if now == last:
            return now
        last = now
    return last


def _add_pair(report: Report, rows: list[tuple[str, float, float, str]], backend: str, name: str,
              vb: float, fl: float, unit: str, target: str = "", ok: bool | None = None) -> None:  # fmt: skip
    report.add(BENCH, f"{backend}.voicebook.{name}", vb, unit)
    report.add(BENCH, f"{backend}.floor.{name}", fl, unit)
    ratio = vb / fl if fl else float("nan")
    report.add(BENCH, f"{backend}.{name}.voicebook_over_floor", ratio, "x", target=target, ok=ok)
    rows.append((f"{backend} {name}", vb, fl, unit))


def run_backend(
    report: Report, backend: str, vb_url: str, fl_url: str, total: int, latency_n: int, callers: int
) -> list[tuple[str, float, float, str]]:
    common.prepare_database(vb_url)
    common.prepare_database(fl_url)
    if backend == "postgresql":
        for url in (vb_url, fl_url):
            asyncio.run(_without_autovacuum(url))
    fl_dsn = fl_url if backend == "sqlite" else common.asyncpg_dsn(fl_url)
    logs = common.WORK_DIR / f"logs-floor-{backend}"
    rows: list[tuple[str, float, float, str]] = []
    quiet = {"VOICEBOOK_RECONCILE_INTERVAL_SECONDS": "0"}  # commits on the caller's path only
    with (
        common.sandbox_server(logs / "sandbox.log") as sandbox,
        common.app_server(vb_url, sandbox, logs / "app.log", extra_env=quiet) as (vb, vb_pid),
        floor_server(fl_dsn, sandbox, logs / "floor.log") as (fl, fl_pid),
    ):
        slots = Slots()
        senders = {"voicebook": ours_sender(vb, f"{backend}vb"), "floor": ours_sender(fl, f"{backend}fl")}
        for send in senders.values():  # warm-up: imports, pools, caches
            asyncio.run(closed_loop(send, slots, 4, 40))
        names = [vb_url.rsplit("/", 1)[1], fl_url.rsplit("/", 1)[1]]
        before = flushed_counters(names) if backend == "postgresql" else {}
        leases_before = budget_leases(vb)
        httpx.delete(f"{sandbox}/_sandbox/bookings").raise_for_status()
        cpu = {"voicebook": 0.0, "floor": 0.0}
        failed = {"voicebook": 0, "floor": 0}
        pids = {"voicebook": vb_pid, "floor": fl_pid}
        for half in (total // 2, total - total // 2):  # alternate so drift hits both alike
            for side, send in senders.items():
                c0 = common.cpu_seconds(pids[side])
                overhead.FAILURES.clear()
                asyncio.run(closed_loop(send, slots, callers, half))
                cpu[side] += common.cpu_seconds(pids[side]) - c0
                failed[side] += sum(overhead.FAILURES.values())
        for side, n in failed.items():
            report.add(BENCH, f"{backend}.{side}.not_booked", n, "requests", target="0", ok=n == 0)
        # In the ratio table too: a refused request costs far less than a booking, so any refusal (e.g.
        # a rate budget the stand-in's load exceeds) makes the CPU figures measure the wrong thing.
        rows.append((f"{backend} requests not booked (must be 0)", failed["voicebook"], failed["floor"], "n"))
        cpu_ms = {side: cpu[side] * 1000 / total for side in cpu}
        _add_pair(
            report, rows, backend, "cpu_ms_per_booking", cpu_ms["voicebook"], cpu_ms["floor"], "ms",
            target="<= 1.5", ok=cpu_ms["voicebook"] <= 1.5 * cpu_ms["floor"],
        )  # fmt: skip
        per_core = {side: 1000 / v for side, v in cpu_ms.items()}
        _add_pair(
            report, rows, backend, "bookings_per_s_per_core", per_core["voicebook"], per_core["floor"], "1/s"
        )
        if backend == "postgresql":
            after = flushed_counters(names)
            commits = [(after[n][0] - before[n][0]) / total for n in names]
            rollbacks = [(after[n][1] - before[n][1]) / total for n in names]
            _add_pair(report, rows, backend, "commits_per_booking", *commits, "commits")
            # The rate budget's lease transactions are the credential's, one per up to MAX_LEASE Cal.com
            # requests, not the booking's: counted by the worker (voicebook_calcom_budget_leases_total)
            # and told apart, so the booking's own commits (claim, record) are a figure of their own.
            leases = (budget_leases(vb) - leases_before) / total
            report.add(BENCH, f"{backend}.voicebook.budget_lease_commits_per_booking", leases, "commits")
            own = commits[0] - leases
            _add_pair(report, rows, backend, "booking_commits_per_booking", own, commits[1], "commits")
            report.figures[-3].target, report.figures[-3].ok = (
                "<= 2",
                None if math.isnan(own) else own <= 2.0005,
            )
            rows.append((f"{backend} rate-budget lease commits per booking", leases, 0.0, "commits"))
            _add_pair(report, rows, backend, "rollbacks_per_booking", *rollbacks, "rollbacks")
        # One caller: added latency over a bare create to the same stand-in.
        bare = bare_sender(sandbox, f"{backend}bare")
        lat: dict[str, list[float]] = {"voicebook": [], "floor": [], "bare": []}
        for half in (latency_n // 2, latency_n - latency_n // 2):
            for side, send in (*senders.items(), ("bare", bare)):
                lat[side] += asyncio.run(closed_loop(send, slots, 1, half))
        med = {side: common.median(v) * 1000 for side, v in lat.items()}
        p99 = {side: common.percentile(v, 99) * 1000 for side, v in lat.items()}
        report.add(BENCH, f"{backend}.bare.median", med["bare"], "ms")
        report.add(BENCH, f"{backend}.bare.p99", p99["bare"], "ms")
        added = {side: med[side] - med["bare"] for side in senders}
        added99 = {side: p99[side] - p99["bare"] for side in senders}
        _add_pair(report, rows, backend, "added_median_ms", added["voicebook"], added["floor"], "ms")
        _add_pair(report, rows, backend, "added_p99_ms", added99["voicebook"], added99["floor"], "ms")
        rss = common.vm_hwm_kb(vb_pid) / 1024
        report.add("memory", f"{backend}.worker_peak_rss", rss, "MB", target="<= 100", ok=rss <= 100)
        report.add("memory", f"{backend}.floor_peak_rss", common.vm_hwm_kb(fl_pid) / 1024, "MB")
    return rows


def ratio_table(rows: list[tuple[str, float, float, str]], loadavg: tuple[float, ...]) -> str:
    lines = [
        f"voicebook / floor, one run (load average at the end {loadavg[0]:.2f} {loadavg[1]:.2f})",
        "| figure | voicebook | floor | voicebook / floor |",
        "|---|---|---|---|",
    ]
    for name, vb, fl, unit in rows:
        ratio = f"{vb / fl:.2f}" if fl else "n/a"
        lines.append(f"| {name} ({unit}) | {vb:.2f} | {fl:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, report: Report | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--total", type=int, help="bookings per server for CPU and commits (default 600)")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--latency-n", type=int, help="requests per path at one caller (default 100)")
    args = parser.parse_args(argv)
    total = args.total or (200 if args.quick else 600)
    latency_n = args.latency_n or (40 if args.quick else 100)
    report = report or Report()
    rows: list[tuple[str, float, float, str]] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with (
                common.sqlite_database("voicebook_bench_vb") as vb,
                common.sqlite_database("voicebook_bench_floor") as fl,
            ):
                rows += run_backend(report, backend, vb, fl, total, latency_n, args.callers)
        else:
            with (
                common.pg_database("voicebook_bench") as vb,
                common.pg_database("voicebook_bench_floor") as fl,
            ):
                rows += run_backend(report, backend, vb, fl, total, latency_n, args.callers)
    report.tables.append(ratio_table(rows, os.getloadavg()))
    return report


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        result = main()
        print(result.table())
        for table in result.tables:
            print()
            print(table)
