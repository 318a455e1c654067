"""Every start-up failure of the CLI is one line that names the fix; help reads cleanly.

These run the commands in-process (CliRunner) where they can, and as real processes where the
behaviour is about the process: a reader closing the pipe, the console script's exit code.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from sqlalchemy import make_url
from typer.testing import CliRunner

from voicebook.cli.main import app
from voicebook.cli.tools import FUNCTIONS, functions_epilog
from voicebook.db.preflight import describe_database_error

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "tenants.yaml"
TOOLS = ROOT / "deploy" / "retell" / "tools.json"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOICEBOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("VOICEBOOK_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("VOICEBOOK_CALCOM_API_KEY", raising=False)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "command",
    [("report",), ("reconcile",), ("tenants", "load", str(EXAMPLE)), ("duplicates", "scan"), ("serve",)],
    ids=lambda c: c[0],
)
def test_a_missing_sqlite_file_is_refused_not_created(cli_env: Path, command: tuple[str, ...]) -> None:
    code, _, err = invoke(*command)
    assert code == 1
    assert error_lines(err) == [
        f"error: no database at {cli_env / 'cli.db'} — run `voicebook db upgrade` to create it, "
        "or set VOICEBOOK_DATABASE_URL"
    ]
    assert not (cli_env / "cli.db").exists()


def test_serve_on_an_unmigrated_sqlite_file(cli_env: Path) -> None:
    (cli_env / "cli.db").touch()
    code, _, err = invoke("serve")
    assert code == 1
    assert error_lines(err) == ["error: the database is not migrated — run `voicebook db upgrade`"]


@pytest.fixture
def missing_database_url(db_url: str) -> str:
    """A URL on the same (PostgreSQL or MariaDB) server naming a database that does not exist."""
    return make_url(db_url).set(database="voicebook_no_such_db").render_as_string(hide_password=False)


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_serve_against_a_missing_server_database(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, missing_database_url: str
) -> None:
    monkeypatch.setenv("VOICEBOOK_DATABASE_URL", missing_database_url)
    code, _, err = invoke("serve")
    assert code == 1
    assert error_lines(err) == [
        "error: database voicebook_no_such_db does not exist — create it, then `voicebook db upgrade`"
    ]


@pytest.mark.parametrize(
    "text",
    ['database "shop" does not exist', "(1049, \"Unknown database 'shop'\")"],
    ids=["postgresql", "mariadb"],
)
def test_missing_database_messages_name_the_fix(text: str) -> None:
    assert describe_database_error(RuntimeError(text)) == (
        "database shop does not exist — create it, then `voicebook db upgrade`"
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_serve_on_a_port_in_use(cli_env: Path, busy_port: int) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, _, err = invoke("serve", "--port", str(busy_port))
    assert code == 1
    assert error_lines(err) == [
        f"error: port {busy_port} is in use — is voicebook already running? PORT={busy_port + 1} make run "
        f"(or voicebook serve --port {busy_port + 1})"
    ]


def test_serve_refuses_several_workers_on_the_in_process_sandbox(cli_env: Path) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, _, err = invoke("serve", "--workers", "2")
    assert code == 1
    [line] = error_lines(err)
    assert line.startswith("error: --workers 2 needs a real Cal.com (VOICEBOOK_CALCOM_API_KEY)")


def test_a_bad_log_level_is_one_settings_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOOK_LOG_LEVEL", "LOUD")
    code, _, err = invoke("report")
    assert code == 1
    assert error_lines(err) == [
        "error: configuration: VOICEBOOK_LOG_LEVEL: 'LOUD' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_rate_limit_below_one_is_one_settings_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE", value)
    code, _, err = invoke("report")
    assert code == 1
    assert error_lines(err) == [
        "error: configuration: VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE: "
        "Input should be greater than or equal to 1"
    ]


def test_call_explains_a_401(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOOK_RETELL_API_KEY", "key_local_not_the_servers")
    with respx.mock(assert_all_called=True) as mock:
        mock.post("http://127.0.0.1:8000/retell/functions/check_availability").mock(
            return_value=httpx.Response(401, json={"detail": "invalid signature"})
        )
        code, _, err = invoke("call", "check_availability", "-a", "service=Haarschnitt")
    assert code == 1
    [line] = error_lines(err)
    assert "HTTP 401" in line
    assert "the key in .env (VOICEBOOK_RETELL_API_KEY) must be the one the server was started with" in line


@pytest.mark.parametrize("command", [(), ("call",), ("tenants", "load"), ("serve",), ("version",)])
def test_help_reads_cleanly(command: tuple[str, ...]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0
    assert "<bool>" not in out
    assert "--help  " in out or "--help " in out


def test_call_help_lists_every_function_with_its_arguments() -> None:
    code, out, _ = invoke("call", "--help")
    assert code == 0
    for name, args in FUNCTIONS.items():
        assert f"\n    {name}\n" in out
        for arg, required, _ in args:
            assert f"      {arg}{'*' if required else ''} " in out


def test_call_help_agrees_with_the_retell_tool_definitions() -> None:
    """The help is written out for start-up speed; this keeps it in step with deploy/retell/tools.json."""
    tools = json.loads(TOOLS.read_text(encoding="utf-8"))
    expected = {
        t["name"]: {(k, k in t["parameters"]["required"]) for k in t["parameters"]["properties"]}
        for t in tools
    }
    assert {name: {(a, r) for a, r, _ in args} for name, args in FUNCTIONS.items()} == expected
    assert functions_epilog().startswith("\b\n")


def test_report_into_a_closed_pipe_ends_quietly(cli_env: Path) -> None:
    """``voicebook report | head``: the reader is gone before the report is written."""
    assert invoke("db", "upgrade")[0] == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already left
    try:
        report = subprocess.run(
            [sys.executable, "-m", "voicebook", "report"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert report.returncode == 0, report.stderr
    assert report.stderr == ""


def test_a_second_server_on_the_same_sandbox_state_is_refused(cli_env: Path) -> None:
    """Another voicebook holds the sandbox's state file: a second one would be a second Cal.com."""
    from voicebook.cli.server import hold_sandbox_state

    assert invoke("db", "upgrade")[0] == 0
    held = hold_sandbox_state(cli_env / "cli.sandbox.json")
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOOK_SANDBOX")}
        done = subprocess.run(
            [sys.executable, "-m", "voicebook", "serve", "--port", str(port)],
            env=env,
            cwd=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(held)
    assert done.returncode == 1, done.stderr
    assert error_lines(done.stderr) == [
        f"error: the sandbox in {cli_env / 'cli.sandbox.json'} is in use by another voicebook "
        f"(pid {os.getpid()}) — stop it first; two sandboxes on one state file would book one slot twice"
    ]
