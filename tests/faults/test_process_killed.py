"""The server process is SIGKILLed between Cal.com storing the booking and our local commit.

Real processes: ``voicebook sandbox`` (stand-alone Cal.com sandbox with its control API) and
``voicebook serve`` on a migrated SQLite file. A ``read_timeout``/``after`` fault makes the sandbox store
the booking and then hang, so the server is waiting for Cal.com's answer when it is killed. After a
restart the same function call is retried (the attempt lock, 1 s here, has expired, so the retry takes
the attempt over and resolves it by lookup), or the reconciler runs first.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import COMPANY_NUMBER, RETELL_KEY, TENANTS
from tests.faults import invariants
from tests.faults.invariants import Transcript, UpstreamBooking
from tests.faults.scene import BOOK, appointments_with, attempts_of, eventually, haarschnitt

from voicebook.db.session import make_engine, make_sessionmaker
from voicebook.retell.signature import sign_body

VOICEBOOK = Path(sys.executable).with_name("voicebook")
CALCOM_KEY = "cal_live_faultsuite"
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The sandbox and server subprocesses of one scenario, with their environment and logs."""

    def __init__(self, root: Path, **settings: str) -> None:
        self.root = root
        self.db = root / "voicebook.db"
        self.sandbox_port, self.server_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOOK_")} | {
            "VOICEBOOK_DATABASE_URL": f"sqlite:///{self.db}",
            "VOICEBOOK_RETELL_API_KEY": RETELL_KEY,
            "VOICEBOOK_CALCOM_API_KEY": CALCOM_KEY,
            "VOICEBOOK_CALCOM_BASE_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "VOICEBOOK_CALCOM_TIMEOUT_SECONDS": "20",
            "VOICEBOOK_ATTEMPT_LOCK_SECONDS": "1",
            "VOICEBOOK_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        self.env |= {f"VOICEBOOK_{k.upper()}": v for k, v in settings.items()}
        self.sandbox: asyncio.subprocess.Process | None = None
        self.server: asyncio.subprocess.Process | None = None
        self._starts = 0

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    async def run(self, *args: str, check: bool = True) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(VOICEBOOK),
            *args,
            cwd=self.root,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        raw, _ = await proc.communicate()
        out = raw.decode(errors="replace")
        assert proc.returncode == 0 or not check, f"voicebook {' '.join(args)} failed:\n{out}"
        return proc.returncode or 0, out

    async def spawn(self, name: str, *args: str) -> asyncio.subprocess.Process:
        self._starts += 1
        log = (self.root / f"{name}-{self._starts}.log").open("wb")
        try:
            return await asyncio.create_subprocess_exec(
                str(VOICEBOOK), *args, cwd=self.root, env=self.env, stdout=log, stderr=log
            )
        finally:
            log.close()

    async def start_sandbox(self) -> None:
        self.sandbox = await self.spawn(
            "sandbox", "sandbox", "--port", str(self.sandbox_port), "--control", "--tenants", str(TENANTS)
        )
        await self._healthy(f"{self.sandbox_url}/_sandbox/clock", self.sandbox)

    async def start_server(self) -> None:
        self.server = await self.spawn("server", "serve", "--port", str(self.server_port))
        await self._healthy(f"{self.server_url}/healthz", self.server)

    async def _healthy(self, url: str, proc: asyncio.subprocess.Process) -> None:
        async with httpx.AsyncClient(timeout=1) as client:

            async def up() -> bool:
                assert proc.returncode is None, f"{url}: process exited; see {self.root}/*.log"
                try:
                    return (await client.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=20, every=0.1, what=f"{url} answers")

    async def kill_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        await self.server.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.root.glob("*.log")
        )

    async def stop(self) -> None:
        for proc in (self.server, self.sandbox):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()


@asynccontextmanager
async def processes(root: Path, **settings: str) -> AsyncIterator[Processes]:
    procs = Processes(root, **settings)

    async def database() -> None:
        await procs.run("db", "upgrade")
        await procs.run("tenants", "load", str(TENANTS))

    try:
        await asyncio.gather(database(), procs.start_sandbox())
        await procs.start_server()
        yield procs
    except BaseException:
        print(procs.logs())
        raise
    finally:
        await procs.stop()


async def call(client: httpx.AsyncClient, base: str, args: dict[str, Any], call_id: str) -> httpx.Response:
    body = {
        "name": BOOK,
        "call": {
            "call_id": call_id,
            "from_number": "+491701234567",
            "to_number": COMPANY_NUMBER,
            "direction": "inbound",
        },
        "args": args,
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"X-Retell-Signature": sign_body(raw, RETELL_KEY), "Content-Type": "application/json"}
    return await client.post(f"{base}/retell/functions/{BOOK}", content=raw, headers=headers)


async def upstream(client: httpx.AsyncClient, procs: Processes) -> list[UpstreamBooking]:
    response = await client.get(f"{procs.sandbox_url}/_sandbox/bookings")
    response.raise_for_status()
    return [UpstreamBooking.from_json(b) for b in response.json()["data"]]


async def reconcile_over_http(procs: Processes) -> str:
    """``voicebook reconcile``; while the CLI lacks it, one ``reconcile_once`` pass in this process."""
    code, out = await procs.run("reconcile", check=False)
    if code == 0:
        return out
    assert "No such command" in out, out
    from voicebook.booking.reconcile.driver import reconcile_once
    from voicebook.bootstrap import booking_policy
    from voicebook.calcom.client import CalcomClient
    from voicebook.calcom.gateway import CalcomGateway
    from voicebook.calcom.transport import build_http_client
    from voicebook.settings import Settings

    settings = Settings(database_url=procs.env["VOICEBOOK_DATABASE_URL"], _env_file=None)  # type: ignore[call-arg]
    http = build_http_client(procs.sandbox_url, CALCOM_KEY, 10.0)
    engine = make_engine(settings.database_url)
    try:
        gateway = CalcomGateway(CalcomClient(http))
        summary = await reconcile_once(
            make_sessionmaker(engine), gateway, booking_policy(settings), owner="fault-suite-cli"
        )
        return f"recorded {summary.recorded}, rows {summary.rows}"
    finally:
        await http.aclose()
        await engine.dispose()


RESUMES = {
    # the agent asks again on the same call; the restarted server's own reconciler is off, so the
    # retry itself must take the dead process's attempt over and resolve it by lookup
    "retry": {"reconcile_interval_seconds": "0"},
    # an operator runs `voicebook reconcile` before the retry (server reconciler off)
    "reconcile_command": {"reconcile_interval_seconds": "0"},
    # the restarted server's periodic reconciler finishes it by itself
    "server_reconciler": {"reconcile_interval_seconds": "0.5"},
}


@pytest.mark.parametrize("resume", list(RESUMES))
async def test_server_killed_between_cal_com_answer_and_local_commit(
    tmp_path: Path, request: pytest.FixtureRequest, resume: str
) -> None:
    transcript = Transcript()
    args = haarschnitt(10)
    async with processes(tmp_path, **RESUMES[resume]) as procs, httpx.AsyncClient(timeout=30) as client:
        fault = {"kind": "read_timeout", "endpoint": "bookings.create", "phase": "after", "times": 1}
        (await client.post(f"{procs.sandbox_url}/_sandbox/faults", json=fault)).raise_for_status()
        in_flight = asyncio.create_task(call(client, procs.server_url, args, "call_687"))

        async def stored() -> list[UpstreamBooking]:
            return await upstream(client, procs)

        (booking,) = await eventually(stored, within=15, what="the sandbox stored the booking")
        assert not in_flight.done(), "the server answered before it could be killed"
        await procs.kill_server()
        with pytest.raises(httpx.TransportError):
            await in_flight  # the caller's request died with the process: no answer at all

        engine = make_engine(procs.env["VOICEBOOK_DATABASE_URL"])
        sessionmaker = make_sessionmaker(engine)
        try:
            (attempt,) = await attempts_of(sessionmaker)
            assert attempt.state == "sent"  # written ahead, never committed further
            assert await appointments_with(sessionmaker, booking.uid) == []

            await procs.start_server()
            await asyncio.sleep(1.2)  # the dead process's attempt lock (1 s) runs out
            if resume == "reconcile_command":
                out = await reconcile_over_http(procs)
                assert "recorded 1," in out, out
                assert len(await appointments_with(sessionmaker, booking.uid)) == 1, out
            elif resume == "server_reconciler":

                async def recorded() -> bool:
                    return bool(await appointments_with(sessionmaker, booking.uid))

                await eventually(recorded, within=10, what="the restarted server's reconciler recorded it")
            else:
                assert await appointments_with(sessionmaker, booking.uid) == []
            response = await call(client, procs.server_url, args, "call_687")
            body = transcript.add(response, "call_687")
            assert response.status_code == 200, response.text
            assert body is not None
            assert body["status"] == "booked", body
            assert body["appointment"]["calcom_booking_uid"] == booking.uid
            assert len(await upstream(client, procs)) == 1  # never booked twice
            assert len(await appointments_with(sessionmaker, booking.uid)) == 1
            if resume == "retry":
                (attempt,) = await attempts_of(sessionmaker)
                assert attempt.tries == 1  # taken over and resolved by lookup, not re-sent
            await invariants.check(request.node.name, await upstream(client, procs), sessionmaker, transcript)
        finally:
            await engine.dispose()
