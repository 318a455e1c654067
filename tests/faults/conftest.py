"""The fault suite's table: every scenario × the four invariants, printed at the end of the run."""

from __future__ import annotations

import pytest
from tests.faults.invariants import RESULTS, Row, render_table

_HERE = "tests/faults/"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.replace("\\", "/").split("::")[0]
    if _HERE not in path or path.endswith("test_invariants.py"):
        return
    name = report.nodeid.split("::")[-1]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        row = RESULTS.setdefault(name, Row())
        row.test_outcome = report.outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault scenarios × invariants (✓ holds, ✗ broken, – not reached)")
    broken = any(ok is False for row in RESULTS.values() for ok in row.invariants.values())
    for line in render_table(RESULTS):
        terminalreporter.write_line(line, red=broken and line.startswith("  "))
