"""Benchmark 3: the duplicate clean-up (migration 0002: archive + delete + unique index).

The table is built at revision 0001 and bulk-loaded (COPY on PostgreSQL, executemany on SQLite) with
``--rows`` appointments of which ``--groups`` booking uids occur 2, 3 or 4 times (the newest copies are
the duplicates). Then ``migrate.upgrade(url, "0002")`` is timed, alembic start-up included.

Side by side, on the same ``--loop-rows`` data (fresh copies), the seed's approach: find the duplicated
uids, then per uid ``SELECT id ... ORDER BY created_at`` and ``DELETE`` the newer rows one key at a
time (no archive), then the same unique index. It runs in one transaction on the fastest driver we
have (asyncpg / sqlite3), so the loop is measured at its best.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from bench import common
from bench.common import Report
from voicebook.db import migrate

BENCH = "cleanup"
COLUMNS = (
    "id",
    "call_id",
    "calcom_booking_uid",
    "event_type_id",
    "start_at",
    "end_at",
    "status",
    "source",
    "attendee_name",
    "attendee_email",
    "created_at",
    "updated_at",
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def rows(total: int, groups: int) -> Iterator[tuple[object, ...]]:
    """``total`` rows; uids 0..groups-1 have 2-4 copies each (the later ones newer), the rest one."""
    row_id = 0
    uid_no = 0
    while row_id < total:
        copies = 2 + uid_no % 3 if uid_no < groups else 1
        for copy in range(min(copies, total - row_id)):
            row_id += 1
            created = EPOCH + timedelta(seconds=uid_no * 7 + copy * 3600)
            start = EPOCH + timedelta(days=30, minutes=30 * (uid_no % 5000))
            yield (
                row_id,
                f"call_{uid_no}_{copy}",
                f"uid{uid_no:012d}",
                2563193,
                start,
                start + timedelta(minutes=30),
                "accepted",
                "api",
                "Bench Caller",
                f"booking+call_{uid_no}@bench.example",
                created,
                created,
            )
        uid_no += 1


def expected_removed(total: int, groups: int) -> int:
    return sum(1 for _ in rows(total, groups)) - len({r[2] for r in rows(total, groups)})


# --- loading -----------------------------------------------------------------------------------------


async def load_pg(url: str, total: int, groups: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        batch: list[tuple[object, ...]] = []
        for row in rows(total, groups):
            batch.append(row)
            if len(batch) == 100_000:
                await conn.copy_records_to_table("appointments", records=batch, columns=COLUMNS)
                batch.clear()
        if batch:
            await conn.copy_records_to_table("appointments", records=batch, columns=COLUMNS)
        await conn.execute("SELECT setval(pg_get_serial_sequence('appointments', 'id'), $1)", total)
        await conn.execute("ANALYZE appointments")
    finally:
        await conn.close()


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _sqlite_row(row: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(
        v.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") if isinstance(v, datetime) else v
        for v in row
    )


def load_sqlite(url: str, total: int, groups: int) -> None:
    conn = sqlite3.connect(_sqlite_path(url))
    try:
        marks = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT INTO appointments ({', '.join(COLUMNS)}) VALUES ({marks})"
        with conn:
            conn.executemany(sql, (_sqlite_row(r) for r in rows(total, groups)))
        conn.execute("ANALYZE")
    finally:
        conn.close()


def build(backend: str, url: str, total: int, groups: int) -> None:
    migrate.upgrade(url, "0001")
    if backend == "sqlite":
        load_sqlite(url, total, groups)
    else:
        asyncio.run(load_pg(url, total, groups))


# --- the two clean-ups -------------------------------------------------------------------------------


def set_based(url: str) -> float:
    t0 = time.perf_counter()
    migrate.upgrade(url, "0002")
    return time.perf_counter() - t0


UNIQUE = "CREATE UNIQUE INDEX uq_loop_calcom_booking_uid ON appointments (calcom_booking_uid)"
DUP_UIDS = "SELECT calcom_booking_uid FROM appointments GROUP BY calcom_booking_uid HAVING COUNT(*) > 1"


async def loop_pg(url: str, *, autocommit: bool = False) -> tuple[float, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        removed = 0
        outer = contextlib.nullcontext() if autocommit else conn.transaction()
        async with outer:  # type: ignore[attr-defined]
            for (uid,) in await conn.fetch(DUP_UIDS):
                ids = await conn.fetch(
                    "SELECT id FROM appointments WHERE calcom_booking_uid = $1 ORDER BY created_at, id", uid
                )
                for (row_id,) in ids[1:]:
                    await conn.execute("DELETE FROM appointments WHERE id = $1", row_id)
                    removed += 1
            await conn.execute(UNIQUE)
        return time.perf_counter() - t0, removed
    finally:
        await conn.close()


def loop_sqlite(url: str, *, autocommit: bool = False) -> tuple[float, int]:
    conn = sqlite3.connect(_sqlite_path(url), isolation_level=None if autocommit else "DEFERRED")
    try:
        t0 = time.perf_counter()
        removed = 0
        with conn:
            for (uid,) in conn.execute(DUP_UIDS).fetchall():
                ids = conn.execute(
                    "SELECT id FROM appointments WHERE calcom_booking_uid = ? ORDER BY created_at, id", (uid,)
                ).fetchall()
                for (row_id,) in ids[1:]:
                    conn.execute("DELETE FROM appointments WHERE id = ?", (row_id,))
                    removed += 1
            conn.execute(UNIQUE)
        return time.perf_counter() - t0, removed
    finally:
        conn.close()


async def count_pg(url: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        left = await conn.fetchval("SELECT count(*) FROM appointments")
        archived = await conn.fetchval("SELECT count(*) FROM appointment_duplicates_archive")
        return int(left), int(archived)
    finally:
        await conn.close()


def count_sqlite(url: str) -> tuple[int, int]:
    conn = sqlite3.connect(_sqlite_path(url))
    try:
        left = conn.execute("SELECT count(*) FROM appointments").fetchone()[0]
        archived = conn.execute("SELECT count(*) FROM appointment_duplicates_archive").fetchone()[0]
        return int(left), int(archived)
    finally:
        conn.close()


def database(backend: str, name: str):  # type: ignore[no-untyped-def]
    return common.sqlite_database(name) if backend == "sqlite" else common.pg_database(name)


def run_backend(report: Report, backend: str, total: int, groups: int) -> None:
    counts = count_sqlite if backend == "sqlite" else (lambda url: asyncio.run(count_pg(url)))
    tag = "pg" if backend == "postgresql" else "sqlite"
    # The big table.
    with database(backend, "voicebook_bench_cleanup") as url:
        t0 = time.perf_counter()
        build(backend, url, total, groups)
        load_s = time.perf_counter() - t0
        seconds = set_based(url)
        left, archived = counts(url)
    removed = expected_removed(total, groups)
    label = f"{tag}.rows{total}.groups{groups}"
    report.add(BENCH, f"{label}.load_seconds", load_s, "s")
    target = "<= 30" if backend == "postgresql" and total >= 1_000_000 else ""
    ok = seconds <= 30 if target else None
    report.add(BENCH, f"{label}.set_based_seconds", seconds, "s", target=target, ok=ok)
    report.add(BENCH, f"{label}.archived_ok", int(archived == removed and left == total - removed), "bool")


def main(argv: list[str] | None = None, report: Report | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k rows, 1k groups; loop on 20k rows")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--groups", type=int)
    parser.add_argument("--loop-rows", type=int)
    parser.add_argument("--loop-groups", type=str, help="comma list; default: 1%% and 10%% of --loop-rows")
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args(argv)
    total = args.rows or (100_000 if args.quick else 1_000_000)
    groups = args.groups or total // 100
    loop_rows = args.loop_rows or (20_000 if args.quick else 100_000)
    loop_groups = (
        [int(g) for g in args.loop_groups.split(",")]
        if args.loop_groups
        else [loop_rows // 100, loop_rows // 10]
    )
    report = report or Report()
    for backend in args.backends.split(","):
        run_backend(report, backend, total, groups)
        for lg in loop_groups:
            run_loop(report, backend, loop_rows, lg)
    return report


def run_loop(report: Report, backend: str, loop_rows: int, loop_groups: int) -> None:
    """Set-based vs the seed's loop on identical fresh copies of the same data."""
    tag = "pg" if backend == "postgresql" else "sqlite"
    label = f"{tag}.rows{loop_rows}.groups{loop_groups}"
    with database(backend, "voicebook_bench_cleanup") as url:
        build(backend, url, loop_rows, loop_groups)
        set_s = set_based(url)
    report.add(BENCH, f"{label}.set_based_seconds", set_s, "s")
    for autocommit in (False, True):
        variant = "seed_loop_autocommit" if autocommit else "seed_loop_one_tx"
        with database(backend, "voicebook_bench_cleanup") as url:
            build(backend, url, loop_rows, loop_groups)
            if backend == "sqlite":
                loop_s, loop_removed = loop_sqlite(url, autocommit=autocommit)
            else:
                loop_s, loop_removed = asyncio.run(loop_pg(url, autocommit=autocommit))
        report.add(BENCH, f"{label}.{variant}_seconds", loop_s, "s")
        report.add(BENCH, f"{label}.{variant}_deleted", loop_removed, "rows")
        ratio = loop_s / set_s
        report.add(BENCH, f"{label}.{variant}_speedup", ratio, "x")  # no target: see docs/BENCHMARKS.md


if __name__ == "__main__":
    print(main().table())
