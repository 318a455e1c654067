"""The HTTP client factory and the one retry policy of the Cal.com adapter.

Retries happen only where resending cannot duplicate anything and the caller, who is on the phone,
is kept waiting at most ``RETRY_BUDGET_SECONDS``:

* connect errors — nothing was sent;
* 429 and 503 — Cal.com (or its edge) refused before processing.

Everything else, above all an ambiguous create (``OutcomeUnknown``), surfaces immediately.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from voicebook.calcom.errors import CalcomError

RETRY_MAX_ATTEMPTS = 3
RETRY_BASE_BACKOFF_SECONDS = 0.2
# Total time a call may spend sleeping between attempts; a longer reset means "give up now".
RETRY_BUDGET_SECONDS = 2.0
RETRYABLE_STATUSES = frozenset({429, 503})

Sleep = Callable[[float], Awaitable[None]]


class RetryableFailure(Exception):
    """Carries a retryable error through tenacity; ``wait_hint`` is Cal.com's reset, if given."""

    def __init__(self, error: CalcomError, wait_hint: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_hint = wait_hint


def _next_wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, RetryableFailure) and exc.wait_hint is not None:
        return exc.wait_hint
    return float(RETRY_BASE_BACKOFF_SECONDS * 2 ** (state.attempt_number - 1))


def _should_retry(state: RetryCallState) -> bool:
    if state.outcome is None or not isinstance(state.outcome.exception(), RetryableFailure):
        return False
    return state.idle_for + _next_wait(state) <= RETRY_BUDGET_SECONDS


def retry_policy(sleep: Sleep) -> AsyncRetrying:
    """A fresh retrying controller per call (tenacity keeps per-run state on it)."""
    return AsyncRetrying(
        stop=stop_after_attempt(RETRY_MAX_ATTEMPTS),
        wait=_next_wait,
        retry=_should_retry,
        sleep=sleep,
        reraise=True,
    )


def build_http_client(
    base_url: str,
    api_key: str | None,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """Build the shared client; ``base_url`` may be given with or without the ``/v2`` suffix."""
    root = base_url.rstrip("/")
    if root.endswith("/v2"):
        root = root[: -len("/v2")]
    headers = {"Accept": "application/json", "User-Agent": "voicebook-calcom"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.AsyncClient(
        base_url=root,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        transport=transport,
        follow_redirects=False,
    )
