"""The `voicebook` command as an operator uses it: progress, one-line summaries, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicebook.cli.main import app

EXAMPLE = Path(__file__).parents[1] / "examples" / "tenants.yaml"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOICEBOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("VOICEBOOK_LOG_LEVEL", "WARNING")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


class TestCli:
    def test_version(self) -> None:
        code, out, _ = invoke("version")
        assert code == 0
        assert out.startswith("voicebook ")

    def test_upgrade_then_load_tenants_twice_is_idempotent(self, cli_env: Path) -> None:
        assert invoke("db", "upgrade")[0] == 0
        code, first, _ = invoke("tenants", "load", str(EXAMPLE))
        assert code == 0
        assert "1 company, 1 phone number(s), 2 service(s)" in first
        code, second, _ = invoke("tenants", "load", str(EXAMPLE))
        assert code == 0
        assert second.strip().endswith("0 change(s)")

    def test_broken_tenants_file_is_one_line_and_exit_1(self, cli_env: Path) -> None:
        invoke("db", "upgrade")
        broken = cli_env / "broken.yaml"
        broken.write_text(EXAMPLE.read_text().replace("Europe/Berlin", "Mars/Olympus"))
        code, _, err = invoke("tenants", "load", str(broken))
        assert code == 1
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert lines == [
            f"error: {broken}: companies[0] (salon-mitte).timezone: unknown time zone 'Mars/Olympus'"
        ]
        assert "Traceback" not in err

    def test_tenants_load_refuses_another_companys_number(self, cli_env: Path) -> None:
        assert invoke("db", "upgrade")[0] == 0
        assert invoke("tenants", "load", str(EXAMPLE))[0] == 0
        thief = cli_env / "thief.yaml"
        thief.write_text(EXAMPLE.read_text().replace("slug: salon-mitte", "slug: salon-ost"))
        code, _, err = invoke("tenants", "load", str(thief))
        assert code == 1
        assert [line for line in err.splitlines() if line.startswith("error:")] == [
            "error: phone number +49301234567 belongs to company 'salon-mitte'; 'salon-ost' cannot take "
            "it over — remove it from 'salon-mitte' first, or load with --move-numbers to move it"
        ]
        code, out, _ = invoke("tenants", "load", "--move-numbers", str(thief))
        assert code == 0, out

    def test_missing_database_is_a_clear_error(self, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("VOICEBOOK_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        code, _, err = invoke("tenants", "load", str(EXAMPLE))
        assert code == 1
        assert err.count("\n") <= 2
        assert "Traceback" not in err

    def test_shared_fallback_template_is_refused(
        self, cli_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("VOICEBOOK_FALLBACK_EMAIL_TEMPLATE", "termin@salon.example")
        code, _, err = invoke("db", "upgrade")
        assert code == 1
        assert "{call_id}" in err

    def test_duplicates_scan_on_a_clean_database(self, cli_env: Path) -> None:
        invoke("db", "upgrade")
        code, out, _ = invoke("duplicates", "scan")
        assert code == 0
        assert "0 duplicate group(s)" in out

    def test_call_without_server_is_a_clear_error(
        self, cli_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("VOICEBOOK_RETELL_API_KEY", "key_test")
        code, _, err = invoke(
            "call", "check_availability", "--url", "http://127.0.0.1:9", "-a", "service=Haarschnitt"
        )
        assert code == 1
        assert "cannot reach" in err

    def test_simulate_incident_shows_every_layer(self, cli_env: Path) -> None:
        code, out, _ = invoke("simulate", "incident")
        assert code == 0, out
        assert "CALL ID MISMATCH" in out
        assert "DUPLICATE BOOKING ID IN DATABASE" in out
        assert "WAS handed" not in out

    def test_report_on_an_empty_database(self, cli_env: Path) -> None:
        invoke("db", "upgrade")
        code, out, _ = invoke("report", "--since", "2026-01-01", "--until", "2026-01-02")
        assert code == 0
        assert "booking attempts" in out
        assert "rejection rate" in out

    def test_report_refuses_a_bad_window(self, cli_env: Path) -> None:
        invoke("db", "upgrade")
        code, _, err = invoke("report", "--since", "yesterday")
        assert code == 1
        assert "not an ISO date" in err

    def test_reconcile_pass_prints_a_summary(self, cli_env: Path) -> None:
        invoke("db", "upgrade")
        code, out, _ = invoke("reconcile")
        assert code == 0
        assert "backlog 0" in out
