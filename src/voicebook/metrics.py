"""Every Prometheus metric voicebook exports, in one place.

Why one module: the alert rules in ``deploy/prometheus/alerts.yml`` and the dashboards depend on these
names and label values, so they are declared once here and nowhere else; code records through these
objects (or ``observe_calcom``) instead of creating metrics of its own.

Labels are low-cardinality by construction: outcomes, guard layers, constraint names, Cal.com endpoint
*templates* (``"POST /v2/bookings"``, never a URL with a uid in it) and HTTP status codes. A call id,
phone number or company never becomes a label; those belong in the logs.

Several worker processes (``voicebook serve --workers N``) each have their own counters. prometheus_client
then runs in *multiprocess mode*: every process writes its values to memory-mapped files in the
directory named by ``PROMETHEUS_MULTIPROC_DIR`` and ``render_metrics`` adds them up. prometheus_client
decides on this mode when it is first imported, so the variable must be in the environment *before the
worker processes start* (``prepare_multiprocess_dir`` does that in the parent, before uvicorn forks or
spawns), and the directory must start empty, or counters of a previous run are added in.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from typing import Final, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "BOOKING_ATTEMPTS",
    "BOOKING_OUTCOMES",
    "CALCOM_IDEMPOTENCY_HITS",
    "CALCOM_REQUEST_SECONDS",
    "CALCOM_RESPONSES",
    "CONSTRAINT_VIOLATIONS",
    "FUNCTION_CALL_SECONDS",
    "GUARD_LAYERS",
    "GUARD_REJECTIONS",
    "IDEMPOTENCY_HIT_KINDS",
    "MULTIPROC_ENV",
    "RECONCILER_ACTIONS",
    "RECONCILER_BACKLOG",
    "RECONCILER_OLDEST_OPEN_SECONDS",
    "Children",
    "booking_attempt",
    "function_call_seconds",
    "mark_process_exited",
    "observe_calcom",
    "prepare_multiprocess_dir",
    "render_metrics",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

BOOKING_OUTCOMES: Final = (
    "booked",
    "replayed",
    "in_progress",
    "slot_unavailable",
    "rejected_duplicate",
    "upstream_error",
    "invalid_input",
    "conflict",
    "not_found",
)
GUARD_LAYERS: Final = ("stale", "call_id_mismatch", "duplicate_in_db", "constraint")
IDEMPOTENCY_HIT_KINDS: Final = ("own_replay", "foreign")

# Cal.com answers in tens of milliseconds to a few seconds; a Retell function call must answer well
# inside the agent's patience (~10 s), so the buckets are dense below 2 s and stop at 30 s.
_LATENCY_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

BOOKING_ATTEMPTS = Counter(
    "voicebook_booking_attempts_total",
    "book_appointment calls by outcome (replayed = a retried call answered from the saved attempt).",
    ["outcome"],
)
GUARD_REJECTIONS = Counter(
    "voicebook_guard_rejections_total",
    "Cal.com answers a duplicate-prevention layer refused to hand to the caller, by layer.",
    ["layer"],
)
CONSTRAINT_VIOLATIONS = Counter(
    "voicebook_constraint_violations_total",
    "Unique-constraint violations caught on insert (layer 4), by constraint name.",
    ["constraint"],
)
CALCOM_IDEMPOTENCY_HITS = Counter(
    "voicebook_calcom_idempotency_hits_total",
    "Cal.com returned an existing booking instead of creating one: ours again, or someone else's.",
    ["kind"],
)
CALCOM_REQUEST_SECONDS = Histogram(
    "voicebook_calcom_request_duration_seconds",
    "Duration of Cal.com API requests, by endpoint template.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
CALCOM_RESPONSES = Counter(
    "voicebook_calcom_responses_total",
    "Cal.com API responses by endpoint template and HTTP status (or timeout/connect_error/reset).",
    ["endpoint", "status"],
)
# Every worker runs the reconciler over the same database, so each sees the same backlog; the largest
# value among the *living* workers is the truth (a dead worker's last value must not linger, see
# mark_process_exited). Outside multiprocess mode the mode is ignored.
RECONCILER_BACKLOG = Gauge(
    "voicebook_reconciler_backlog",
    "Booking attempts still open (pending or ambiguous) when the reconciler last looked.",
    multiprocess_mode="livemax",
)
RECONCILER_OLDEST_OPEN_SECONDS = Gauge(
    "voicebook_reconciler_oldest_open_attempt_seconds",
    "Age of the oldest open booking attempt when the reconciler last looked (0 when none).",
    multiprocess_mode="livemax",
)
# The one metric labelled by company (issue 16): an operator must see *which* company lost its calendar.
# Its cardinality is bounded by the tenants file, and only companies with their own credentials appear.
COMPANY_DISCONNECTED = Gauge(
    "voicebook_company_disconnected",
    "1 while a company's own Cal.com credential is refused or revoked (its callers cannot book).",
    ["company"],
    multiprocess_mode="livemax",
)
# How often a worker goes to the shared rate-budget store (a transaction on ``rate_budgets`` or a Redis
# call) instead of spending a token it leased: the budget's cost per Cal.com request (issue 17's bench
# tells these commits from the booking's own).
CALCOM_BUDGET_LEASES = Counter(
    "voicebook_calcom_budget_leases_total",
    "Leases a worker asked the shared Cal.com rate-budget store for (one store transaction each).",
)
CALCOM_VERSION_FALLBACK = Counter(
    "voicebook_calcom_version_fallback_total",
    "Cal.com answers whose shape is not the pinned cal-api-version's (a silent older controller).",
    ["endpoint"],
)
RECONCILER_ACTIONS = Counter(
    "voicebook_reconciler_actions_total",
    "What the reconciler did with an open attempt (recorded, failed, skipped...).",
    ["action"],
)
FUNCTION_CALL_SECONDS = Histogram(
    "voicebook_function_call_duration_seconds",
    "Time to answer a Retell function call, by function name.",
    ["function"],
    buckets=_LATENCY_BUCKETS,
)

# Create the known label combinations at 0. A counter series that first appears already at 1 shows no
# increase() to Prometheus, so without this the first duplicate ever would not fire its alert.
for _outcome in BOOKING_OUTCOMES:
    BOOKING_ATTEMPTS.labels(outcome=_outcome)
for _layer in GUARD_LAYERS:
    GUARD_REJECTIONS.labels(layer=_layer)
for _kind in IDEMPOTENCY_HIT_KINDS:
    CALCOM_IDEMPOTENCY_HITS.labels(kind=_kind)


M = TypeVar("M", Counter, Gauge, Histogram)


class Children(Generic[M]):
    """A labelled metric's children, each looked up once: ``children("booked")`` is ``labels("booked")``.

    ``labels()`` checks and converts its arguments, takes the metric's lock and looks the child up on every
    call, several times per booking; the child it returns is the same object each time (prometheus_client
    keeps one per label values until ``remove``/``clear``, which voicebook never calls). So it is kept here
    by its label values, given positionally in the metric's label order. The label values are
    low-cardinality by construction (see the module docstring), so this holds as many entries as the
    metric has series.
    """

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


booking_attempt: Final = Children(BOOKING_ATTEMPTS)
"""``booking_attempt(outcome).inc()``: ``BOOKING_ATTEMPTS.labels(outcome=outcome).inc()``, resolved once."""
function_call_seconds: Final = Children(FUNCTION_CALL_SECONDS)
"""``function_call_seconds(function).observe(s)``: ``FUNCTION_CALL_SECONDS.labels(function=...)``, once."""
_calcom_seconds: Final = Children(CALCOM_REQUEST_SECONDS)
_calcom_responses: Final = Children(CALCOM_RESPONSES)


def observe_calcom(endpoint: str, status: int | str, seconds: float) -> None:
    """Record one Cal.com request: its duration and how it ended.

    ``endpoint`` is a template such as ``"POST /v2/bookings"``; ``status`` the HTTP status code, or
    ``"timeout"``, ``"connect_error"``, ``"reset"`` when no status arrived. Both go into one call so
    that the latency histogram and the status counter can never disagree about what was counted.
    """
    _calcom_seconds(endpoint).observe(seconds)
    _calcom_responses(endpoint, str(status)).inc()


def render_metrics() -> tuple[bytes, str]:
    """Return the ``/metrics`` body and its content type.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the values of all worker processes are read from that
    directory into a fresh registry (the multiprocess collector must not be added to the default
    registry, or this process's values would be counted twice); otherwise the default registry is it.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(workers: int | None = None) -> str | None:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory; call before worker processes start.

    Called by ``voicebook serve --workers N`` in the parent process, before uvicorn starts its workers,
    which inherit the variable and therefore import prometheus_client in multiprocess mode. An operator's
    own ``PROMETHEUS_MULTIPROC_DIR`` is respected, but emptied of a previous run's files (values of dead
    processes would otherwise be summed in forever). Without one, a fresh temporary directory is made
    and removed when this process exits. With ``workers`` given and at most 1, nothing is done and
    ``None`` is returned: a single process needs no shared directory.
    """
    if workers is not None and workers <= 1:
        return None
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return path
    path = tempfile.mkdtemp(prefix="voicebook-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = path
    return path


def mark_process_exited(pid: int | None = None) -> None:
    """Drop an exiting worker's live gauges, so its last reconciler backlog stops counting.

    Call from the app's shutdown (lifespan ``finally``); a no-op outside multiprocess mode. Counters and
    histograms of the process stay, as they must: what it counted did happen.
    """
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]
