"""``voicebook --help`` and ``voicebook version`` start fast: nothing heavy is imported.

Measured by what is imported (``python -X importtime``), not by a stopwatch, so the test does not flake
on a busy machine: SQLAlchemy, FastAPI, httpx, pydantic(-settings), structlog, uvicorn and rich cost
about a second together (see the commit that added this test for the timings).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "structlog",
    "uvicorn",
    "rich",
    "alembic",
    "voicebook.settings",
    "voicebook.db",
)


def imported_modules(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voicebook", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("args", [("version",), ("--help",)], ids=lambda a: a[0])
def test_start_up_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "voicebook" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []
