"""The HTTP client factory and the one retry policy of the Cal.com adapter.

Retries happen only where resending cannot duplicate anything and the caller, who is on the phone,
is kept waiting at most ``RETRY_BUDGET_SECONDS``:

* connect errors (refused, DNS, connect or pool timeout) — nothing was sent;
* 429 — Cal.com's throttler answers before the request is processed (its reset header is honoured);
* 502/503/504 on a *read* — a GET changes nothing, so a gateway hiccup may be tried again.

A 5xx on a request that creates or changes a booking is never resent: an edge or proxy can answer
502/503/504 while Cal.com goes on and stores the booking, and a blind re-send then meets our own
booking as "busy" (issue 13, case 4). It surfaces at once as ``OutcomeUnknown`` for the domain to
resolve by lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from voicebook.calcom.errors import CalcomError

RETRY_MAX_ATTEMPTS = 3
RETRY_BASE_BACKOFF_SECONDS = 0.2
# Total time a call may spend sleeping between attempts; a longer reset means "give up now".
RETRY_BUDGET_SECONDS = 2.0
# Statuses that may be resent blind, by whether the request creates or changes something.
RETRYABLE_WRITE_STATUSES = frozenset({429})
RETRYABLE_READ_STATUSES = frozenset({429, 502, 503, 504})

Sleep = Callable[[float], Awaitable[None]]


class RetryableFailure(Exception):
    """Carries a retryable error through tenacity; ``wait_hint`` is Cal.com's reset, if given."""

    def __init__(self, error: CalcomError, wait_hint: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_hint = wait_hint


def is_retryable_status(status: int, *, mutating: bool) -> bool:
    """Whether an HTTP answer with ``status`` may be resent without risking a second booking."""
    return status in (RETRYABLE_WRITE_STATUSES if mutating else RETRYABLE_READ_STATUSES)


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


class _SetCookieOnly(httpx.Cookies):
    """The client's cookies, read from a response only when it sets one.

    httpx hands every response to ``CookieJar.extract_cookies`` through two compatibility wrappers (a
    ``urllib.request.Request`` and an ``email`` message built from the headers): a quarter to a third of
    what the client spends on a Cal.com request over a fast connection. Without a ``Set-Cookie`` (or
    ``Set-Cookie2``) header the jar takes nothing from the response (``CookieJar.make_cookies`` returns
    no cookie), so that work is skipped; a response that sets cookies is read as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class CalcomHTTPClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose ``cookies`` skip responses that set none (``_SetCookieOnly``): the
    same jar, the same cookies kept and sent."""

    _set_cookie_only: _SetCookieOnly | None = None

    @property
    def cookies(self) -> httpx.Cookies:
        jar = super().cookies.jar  # httpx's own, from the constructor or the setter
        kept = self._set_cookie_only
        if kept is None or kept.jar is not jar:
            kept = self._set_cookie_only = _SetCookieOnly(jar)
        return kept

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        httpx.AsyncClient.cookies.fset(self, cookies)  # type: ignore[attr-defined]


def build_http_client(
    base_url: str,
    api_key: str | None,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """Build the shared client; ``base_url`` may be given with or without the ``/v2`` suffix."""
    root = base_url.rstrip("/")
    if root.endswith("/v2"):
        root = root[: -len("/v2")]
    headers = {"Accept": "application/json", "User-Agent": "voicebook-calcom"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return CalcomHTTPClient(
        base_url=root,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        transport=transport,
        follow_redirects=False,
        limits=limits
        if limits is not None
        else httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
