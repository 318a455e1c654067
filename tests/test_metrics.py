"""Metrics render in Prometheus' text format, alone and summed over worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from voicebook import metrics


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def rendered_samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)


def test_counters_increment_and_render() -> None:
    before = sample("voicebook_booking_attempts_total", outcome="booked")
    metrics.BOOKING_ATTEMPTS.labels(outcome="booked").inc()
    metrics.GUARD_REJECTIONS.labels(layer="call_id_mismatch").inc()

    body, content_type = metrics.render_metrics()

    assert content_type.startswith("text/plain")
    assert sample("voicebook_booking_attempts_total", outcome="booked") == before + 1
    got = rendered_samples(body)
    assert got[("voicebook_booking_attempts_total", frozenset({("outcome", "booked")}))] == before + 1
    assert got[("voicebook_guard_rejections_total", frozenset({("layer", "call_id_mismatch")}))] >= 1


def test_known_label_values_exist_at_zero_so_the_first_increase_alerts() -> None:
    body, _ = metrics.render_metrics()
    got = rendered_samples(body)

    for layer in metrics.GUARD_LAYERS:
        assert ("voicebook_guard_rejections_total", frozenset({("layer", layer)})) in got
    for outcome in metrics.BOOKING_OUTCOMES:
        assert ("voicebook_booking_attempts_total", frozenset({("outcome", outcome)})) in got


def test_observe_calcom_records_latency_and_status_together() -> None:
    endpoint = "POST /v2/bookings"
    count_before = sample("voicebook_calcom_request_duration_seconds_count", endpoint=endpoint)
    timeouts_before = sample("voicebook_calcom_responses_total", endpoint=endpoint, status="timeout")

    metrics.observe_calcom(endpoint, 201, 0.2)
    metrics.observe_calcom(endpoint, "timeout", 10.0)

    assert sample("voicebook_calcom_request_duration_seconds_count", endpoint=endpoint) == count_before + 2
    assert sample("voicebook_calcom_responses_total", endpoint=endpoint, status="201") >= 1
    assert (
        sample("voicebook_calcom_responses_total", endpoint=endpoint, status="timeout") == timeouts_before + 1
    )


def test_gauges_set() -> None:
    metrics.RECONCILER_BACKLOG.set(3)
    metrics.RECONCILER_OLDEST_OPEN_SECONDS.set(42.5)

    assert sample("voicebook_reconciler_backlog") == 3
    assert sample("voicebook_reconciler_oldest_open_attempt_seconds") == 42.5


def test_prepare_multiprocess_dir_is_a_no_op_for_one_worker() -> None:
    assert metrics.prepare_multiprocess_dir(workers=1) is None
    assert metrics.MULTIPROC_ENV not in os.environ


def test_prepare_multiprocess_dir_empties_an_operator_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"left over from the last run")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))

    assert metrics.prepare_multiprocess_dir(workers=4) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_prepare_multiprocess_dir_makes_a_fresh_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    path = metrics.prepare_multiprocess_dir()
    monkeypatch.delenv(metrics.MULTIPROC_ENV)  # undo for the other tests (setenv came from the code)

    assert path is not None
    assert Path(path).is_dir()
    assert list(Path(path).iterdir()) == []


WORKER = """
import sys
from voicebook import metrics
metrics.BOOKING_ATTEMPTS.labels(outcome="booked").inc(int(sys.argv[1]))
metrics.RECONCILER_OLDEST_OPEN_SECONDS.set(float(sys.argv[2]))
metrics.observe_calcom("POST /v2/bookings", 201, 0.3)
"""


def test_multiprocess_mode_sums_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real processes count into PROMETHEUS_MULTIPROC_DIR; the parent renders their sum."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(count), str(age)], env=env)
        for count, age in ((2, 120.0), (3, 700.0))
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    body, _ = metrics.render_metrics()
    got = rendered_samples(body)

    assert got[("voicebook_booking_attempts_total", frozenset({("outcome", "booked")}))] == 5
    # livemax: the largest value among the processes (neither was marked dead).
    assert got[("voicebook_reconciler_oldest_open_attempt_seconds", frozenset())] == 700
    calls = (
        "voicebook_calcom_request_duration_seconds_count",
        frozenset({("endpoint", "POST /v2/bookings")}),
    )
    assert got[calls] == 2

    # A worker that exits cleanly drops out of the live gauge.
    metrics.mark_process_exited(workers[1].pid)
    got = rendered_samples(metrics.render_metrics()[0])
    assert got[("voicebook_reconciler_oldest_open_attempt_seconds", frozenset())] == 120
    assert got[("voicebook_booking_attempts_total", frozenset({("outcome", "booked")}))] == 5


def test_children_are_the_labelled_series_themselves() -> None:
    """``Children`` keeps what ``labels()`` returns: counting through it is counting the same series."""
    before = sample("voicebook_booking_attempts_total", outcome="conflict")
    metrics.booking_attempt("conflict").inc()
    metrics.booking_attempt("conflict").inc(2)
    assert metrics.booking_attempt("conflict") is metrics.BOOKING_ATTEMPTS.labels(outcome="conflict")
    assert sample("voicebook_booking_attempts_total", outcome="conflict") == before + 3

    calls = "voicebook_function_call_duration_seconds_count"
    seconds = sample(calls, function="check_availability")
    metrics.function_call_seconds("check_availability").observe(0.2)
    assert sample(calls, function="check_availability") == seconds + 1

    template = "bookings.children_test"
    metrics.observe_calcom(template, 201, 0.1)
    metrics.observe_calcom(template, 201, 0.3)
    metrics.observe_calcom(template, "ConnectError", 0.1)
    assert sample("voicebook_calcom_responses_total", endpoint=template, status="201") == 2
    assert sample("voicebook_calcom_responses_total", endpoint=template, status="ConnectError") == 1
    assert sample("voicebook_calcom_request_duration_seconds_count", endpoint=template) == 3
    assert sample("voicebook_calcom_request_duration_seconds_sum", endpoint=template) == pytest.approx(0.5)
