"""Shared plumbing for the benchmarks: processes, ports, scratch databases, figures.

Every figure is printed as one JSON line ``{"bench", "figure", "value", "unit"}`` (so runs compare
across commits) and collected for the result table printed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
PG_URL = os.environ.get("VOICEBOOK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RETELL_KEY = "key_bench_0000000000000000"
CALCOM_KEY = "cal_sandbox_local"
COMPANY_NUMBER = "+49301234567"
EVENT_TYPE_ID = 9100001
SERVICE = "Benchschnitt"
SLOT_MINUTES = 30
HOSTS = 20
WORK_DIR = Path(os.environ.get("VOICEBOOK_BENCH_DIR", "/tmp/voicebook-bench"))

TENANTS_YAML = f"""companies:
  - slug: bench
    name: Bench Salon
    timezone: UTC
    email_domain: bench.example
    locale: de
    phone_numbers: ["{COMPANY_NUMBER}"]
    services:
      - {{name: {SERVICE}, event_type_id: {EVENT_TYPE_ID}, duration_minutes: {SLOT_MINUTES}}}
"""


def event_type_json() -> dict[str, Any]:
    """The sandbox event type behind the bench service: many hosts, open around the clock, every day."""
    return {
        "id": EVENT_TYPE_ID,
        "slug": "benchschnitt",
        "length_minutes": SLOT_MINUTES,
        "scheduling_type": "individual",
        "hosts": [
            {
                "id": 910000 + n,
                "name": f"Host {n}",
                "email": f"host{n}@sandbox.invalid",
                "username": f"host{n}",
                "time_zone": "UTC",
            }
            for n in range(HOSTS)
        ],
        "time_zone": "UTC",
        "working_hours": [["Mon-Sun", "00:00", "23:59"]],
        "title": SERVICE,
    }


# --- figures ---------------------------------------------------------------------------------------


@dataclass
class Figure:
    bench: str
    figure: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # extra tables (e.g. the floor's ratios), printed last

    def add(
        self,
        bench: str,
        figure: str,
        value: float,
        unit: str,
        *,
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        fig = Figure(bench, figure, round(float(value), 4), unit, target, ok)
        self.figures.append(fig)
        print(json.dumps({"bench": bench, "figure": figure, "value": fig.value, "unit": unit}), flush=True)

    def table(self) -> str:
        rows = [("bench", "figure", "value", "unit", "target", "met")]
        for f in self.figures:
            met = "" if f.ok is None else ("yes" if f.ok else "NO")
            rows.append((f.bench, f.figure, f"{f.value:g}", f.unit, f.target, met))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


@contextlib.contextmanager
def spawn(
    args: list[str], *, env: dict[str, str] | None = None, log: Path, grace: float = 15.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session; stopped (SIGINT, then SIGKILL) on exit.

    SIGINT, because uvicorn re-raises the signal it shut down on: SIGINT then ends in
    ``KeyboardInterrupt`` and ``finally`` blocks (the profiler's report) still run.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(log.parent),
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def sandbox_server(log: Path) -> Iterator[str]:
    """The Cal.com sandbox served standalone over real HTTP, with its control API; yields its base URL."""
    port = free_port()
    args = [PYTHON, "-m", "bench.sandbox_server", "--port", str(port)]
    with spawn(args, env={"PYTHONPATH": str(ROOT)}, log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/_sandbox/clock", proc=proc)
        httpx.post(f"{base}/_sandbox/event-types", json=event_type_json()).raise_for_status()
        yield base


# The benches book hundreds of times a second against the stand-in: a Cal.com key whose limit was raised
# (Cal.com raises it on request). The stand-in announces this limit in its X-RateLimit headers and the
# service's budget is set to match, exactly as an operator would configure such a key.
RATE_LIMIT_PER_MINUTE = 10_000_000


def app_env(db_url: str, calcom_base: str) -> dict[str, str]:
    """The server's environment. ``VOICEBOOK_BENCH_SRC`` (a ``src`` directory of another checkout, e.g.
    ``git worktree add /tmp/before <commit>`` then ``/tmp/before/src``) serves that code instead, so a
    before/after pair runs with the same bench, stand-in and floor."""
    return {
        "VOICEBOOK_DATABASE_URL": db_url,
        "VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
        "VOICEBOOK_CALCOM_BASE_URL": calcom_base,
        "VOICEBOOK_CALCOM_API_KEY": CALCOM_KEY,
        "VOICEBOOK_RETELL_API_KEY": RETELL_KEY,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("VOICEBOOK_BENCH_SRC"), str(ROOT)])),
    }


def prepare_database(db_url: str) -> None:
    """Migrate to head and load the bench tenant (through the CLI, as an operator would)."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    tenants = WORK_DIR / "tenants.yaml"
    tenants.write_text(TENANTS_YAML)
    env = {**os.environ, "VOICEBOOK_DATABASE_URL": db_url}
    for args in (["db", "upgrade"], ["tenants", "load", str(tenants)]):
        subprocess.run(
            [str(VENV_BIN / "voicebook"), *args], env=env, cwd=WORK_DIR, check=True, capture_output=True
        )


@contextlib.contextmanager
def app_server(
    db_url: str,
    calcom_base: str,
    log: Path,
    workers: int = 1,
    profile: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """``voicebook serve`` as a real uvicorn server; yields (base URL, pid of the serving process).

    With ``profile`` the server runs under pyinstrument, which writes a text profile there on exit.
    """
    port = free_port()
    args = [str(VENV_BIN / "voicebook"), "serve", "--port", str(port), "--workers", str(workers)]
    if profile is not None:
        args = [PYTHON, "-m", "bench.profiled_serve", "--port", str(port), "--out", str(profile)]
    grace = 120.0 if profile is not None else 15.0
    env = {**app_env(db_url, calcom_base), **(extra_env or {})}
    with spawn(args, env=env, log=log, grace=grace) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", timeout=30.0 + 30.0 * workers, proc=proc)  # a busy box starts slowly
        yield base, proc.pid


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (every thread's children), e.g. uvicorn's workers."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(p) for p in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (those that exited meanwhile count as 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


# --- scratch databases -------------------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    """A PostgreSQL URL as asyncpg takes it (without SQLAlchemy's ``+asyncpg`` driver name)."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_admin(sql: str, url: str = PG_URL) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_scratch_url(name: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


# Appended to every scratch database name, so benches of several checkouts can share one server.
DB_SUFFIX = os.environ.get("VOICEBOOK_BENCH_DB_SUFFIX", "")


@contextlib.contextmanager
def pg_database(name: str) -> Iterator[str]:
    """A fresh scratch database, dropped afterwards."""
    name += DB_SUFFIX
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_scratch_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def sqlite_database(name: str) -> Iterator[str]:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": model}
