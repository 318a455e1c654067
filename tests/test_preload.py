"""``voicebook.preload``: optional extras hidden while a library is first imported; log lines unchanged."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from voicebook.preload import import_without


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "vb_host.py").write_text(
        "try:\n    import vb_extra\n    HAS_EXTRA = True\nexcept ImportError:\n    HAS_EXTRA = False\n"
    )
    (tmp_path / "vb_extra.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("vb_host", "vb_extra"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_the_extra_is_hidden_from_the_first_import_only(packages: Path) -> None:
    import_without("vb_host", "vb_extra")
    assert sys.modules["vb_host"].HAS_EXTRA is False
    assert "vb_extra" not in sys.modules  # no None left behind: it can still be imported later
    assert importlib.import_module("vb_extra").VALUE == 1


def test_nothing_changes_when_either_was_imported_already(packages: Path) -> None:
    importlib.import_module("vb_extra")
    import_without("vb_host", "vb_extra")
    assert sys.modules["vb_host"].HAS_EXTRA is True


LOG = """
import sys
if sys.argv[1] == "preloaded":
    import voicebook.preload
import structlog
from voicebook.logging import configure_logging
configure_logging("INFO", json=sys.argv[2] == "json")
log = structlog.get_logger("voicebook.test")
try:
    {}["missing"]
except KeyError:
    log.exception("failed", phone="+4930123456", email="someone@example.com")
log.info("done", attempt_id="a1")
sys.__stdout__.flush()
sys.__stderr__.flush()
print("rich loaded:", "rich" in sys.modules, file=open("rich.txt", "w"))
"""


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_log_lines_are_the_same_without_structlogs_rich(renderer: str, tmp_path: Path) -> None:
    """voicebook formats exceptions itself, so structlog's rich tracebacks never rendered anything."""

    def run(mode: str) -> tuple[str, str]:
        command = [sys.executable, "-c", LOG, mode, renderer]
        out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
        logged = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", "<time>", out.stdout + out.stderr)
        return logged, (tmp_path / "rich.txt").read_text().strip()

    preloaded, rich_then = run("preloaded")
    as_is, rich_before = run("as-is")
    assert (rich_then, rich_before) == ("rich loaded: False", "rich loaded: True")
    assert preloaded == as_is
    assert "KeyError: 'missing'" in preloaded
