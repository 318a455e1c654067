"""Operations end to end: logs of a whole booking flow leak nothing, metrics add up over worker processes.

The helpers at the top (``served``) start the real ``voicebook serve`` command on a free port against a
fresh, migrated SQLite file with the example tenants; the admin page's browser test uses them too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.harness import RETELL_KEY, TENANTS, running_service
from tests.e2e.test_booking_over_http import next_weekday_at

from voicebook.retell.signature import sign_body

REPO = Path(__file__).parents[1]
VOICEBOOK = Path(sys.executable).parent / "voicebook"
START_TIMEOUT_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 120.0
CALLER, COMPANY = "+491701234567", "+49301234567"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base_url: str
    database_url: str
    log: Path


def voicebook_cli(env: dict[str, str], *args: str, cwd: Path) -> None:
    """Run one ``voicebook`` command to completion; its output is shown only when it fails."""
    done = subprocess.run(
        [str(VOICEBOOK), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"voicebook {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def served(tmp_path: Path, *args: str, **env_vars: str) -> Iterator[Server]:
    """``voicebook serve`` on a free port, ready (``/readyz``) on entry, its process group killed on exit.

    It runs in ``tmp_path`` so a developer's ``.env`` in the repository cannot change what is tested.
    """
    database_url = f"sqlite:///{tmp_path / 'voicebook.db'}"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VOICEBOOK_") and k != "PROMETHEUS_MULTIPROC_DIR"
        },
        "VOICEBOOK_DATABASE_URL": database_url,
        "VOICEBOOK_RETELL_API_KEY": RETELL_KEY,
        "VOICEBOOK_RECONCILE_INTERVAL_SECONDS": "3600",
        **env_vars,
    }
    voicebook_cli(env, "db", "upgrade", cwd=tmp_path)
    voicebook_cli(env, "tenants", "load", str(TENANTS), cwd=tmp_path)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VOICEBOOK), "serve", "--port", str(port), *args],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers die with it
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"server exited early:\n{log.read_text()}"
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (
                f"server not ready in {START_TIMEOUT_SECONDS} s:\n{log.read_text()}"
            )
            time.sleep(0.2)
        yield Server(base_url, database_url, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM the whole process group (uvicorn's supervisor and workers), SIGKILL what lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def signed_call(function: str, args: dict[str, Any], call_id: str) -> tuple[bytes, dict[str, str]]:
    body = {
        "name": function,
        "call": {"call_id": call_id, "from_number": CALLER, "to_number": COMPANY, "direction": "inbound"},
        "args": args,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw, {"X-Retell-Signature": sign_body(raw, RETELL_KEY), "Content-Type": "application/json"}


# --- (a) logs ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_whole_booking_flow_logs_no_personal_data_or_secrets(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Booking, a rejected second caller, a cancel: every line JSON, with call_id, and nothing raw."""
    signatures: list[str] = []
    async with running_service(db_url) as env:
        original_post = env.client.post

        async def post_recording_signature(url: str, **kwargs: Any) -> httpx.Response:
            signatures.append(kwargs["headers"]["X-Retell-Signature"])
            return await original_post(url, **kwargs)

        env.client.post = post_recording_signature  # type: ignore[method-assign,assignment]
        start = next_weekday_at(11)
        args = {"service": "Beratung", "start": start, "name": "Familie Meier", "email": "meier@example.com"}
        avail = await env.call("check_availability", {"service": "Beratung", "date": start[:10]})
        assert avail.json()["status"] == "available"
        first = (await env.call("book_appointment", {**args, "phone": CALLER}, call_id="call_687")).json()
        env.sandbox.clock.advance(timedelta(minutes=35))
        second = (await env.call("book_appointment", args, call_id="call_688")).json()
        third = (await env.call("cancel_appointment", {}, call_id="call_687")).json()
        assert (first["status"], second["status"], third["status"]) == (
            "booked",
            "rejected_duplicate",
            "cancelled",
        )

    captured = capsys.readouterr()
    output = captured.err + captured.out
    assert output.strip()
    forbidden = [CALLER, COMPANY, "meier@example.com", RETELL_KEY, *signatures]
    for secret in forbidden:
        assert secret not in output, f"{secret[:8]}... leaked into the logs"
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert events
    decisions = [e for e in events if e.get("logger", "").startswith("voicebook.booking")]
    assert decisions, "no booking decisions were logged"
    assert all(e.get("call_id") for e in decisions), [e for e in decisions if not e.get("call_id")]
    assert any(e["event"] == "CALL ID MISMATCH" and e["call_id"] == "call_688" for e in events)


# --- (b) metrics over worker processes ------------------------------------------------------------


def function_call_count(base_url: str) -> float:
    body = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "voicebook_function_call_duration_seconds_count"
    )


@contextmanager
def standalone_sandbox(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``voicebook sandbox`` as the one Cal.com several workers share; yields the settings that reach it.

    The built-in sandbox lives in one process, so ``serve --workers 2`` refuses it; a deployment with
    workers talks to one Cal.com, which is what this stands in for.
    """
    port, key = free_port(), "cal_live_workers_test"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOICEBOOK_")},
        "VOICEBOOK_CALCOM_API_KEY": key,
    }
    log = tmp_path / "sandbox.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VOICEBOOK), "sandbox", "--port", str(port), "--tenants", str(TENANTS)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"sandbox exited early:\n{log.read_text()}"
            try:
                httpx.get(f"{base_url}/v2/bookings", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"sandbox not ready:\n{log.read_text()}"
                time.sleep(0.2)
        yield {"VOICEBOOK_CALCOM_API_KEY": key, "VOICEBOOK_CALCOM_BASE_URL": base_url}
    finally:
        stop(process)


@pytest.mark.slow
def test_function_call_metrics_add_up_over_two_workers(tmp_path: Path) -> None:
    """Every call is counted once, whichever worker answered it and whichever worker renders /metrics."""
    if shutil.which(str(VOICEBOOK)) is None:
        pytest.fail(f"{VOICEBOOK} is missing: install the project into the venv (pip install -e .)")
    with (
        standalone_sandbox(tmp_path) as calcom,
        served(tmp_path, "--workers", "2", **calcom) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        # /readyz answers once one worker is up; on a loaded machine the second one can take seconds
        # longer, and calls sent before it listens all land on the first (nothing spread, nothing proven).
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while server.log.read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline, f"second worker never started:\n{server.log.read_text()}"
            time.sleep(0.2)
        calls = 0
        for i in range(6):
            raw, headers = signed_call(
                "check_availability",
                {"service": "Haarschnitt", "date": next_weekday_at(9)[:10]},
                f"call_m{i}",
            )
            # A fresh connection per call, so the kernel spreads them over both workers.
            r = httpx.post(
                f"{server.base_url}/retell/functions/check_availability", content=raw, headers=headers
            )
            assert r.status_code == 200, r.text
            calls += 1
        for i, hour in enumerate((9, 10, 11)):
            raw, headers = signed_call(
                "book_appointment",
                {"service": "Haarschnitt", "start": next_weekday_at(hour), "name": f"Kunde {i}"},
                f"call_b{i}",
            )
            r = httpx.post(
                f"{server.base_url}/retell/functions/book_appointment", content=raw, headers=headers
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "booked", r.json()
            calls += 1
        # Fresh connections again: whichever worker renders /metrics must report every worker's calls.
        counts = [function_call_count(server.base_url) for _ in range(6)]
        assert counts == [calls] * len(counts)
        assert client.get("/readyz").status_code == 200
        # The second worker may still be importing on a busy machine: the first one can serve everything.
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while server.log.read_text().count("Started server process") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.log.read_text().count("Started server process") >= 2
