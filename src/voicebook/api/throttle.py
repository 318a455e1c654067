"""Login throttling: too many wrong admin tokens from one client address → 429 with ``Retry-After``.

The admin token is the only password-like secret an outsider can guess at over HTTP (the login form, a
bearer header on ``/api/…``, a forged session cookie). Without a limit, guessing costs nothing: 300 wrong
tokens in 0.6 s all got a plain 401. Here each client address may fail ``attempts_per_minute`` times in a
sliding minute; after that every further attempt *with credentials* gets 429 until the oldest failure
leaves the window (a correct token included: otherwise the 429 would tell a guesser when they were right).
A visit without credentials (the login page itself) is never counted or refused.

Why a pure ASGI middleware watching response statuses: who gets in is decided in one place
(``api.admin.auth.check_access``); this only counts that decision's 401s, so the two cannot disagree.

Limits of the design, on purpose: the count lives in process memory (one count per worker, reset by a
restart; an attacker gets ``workers × limit`` tries a minute, still far too few to guess a token), and the
address is the TCP peer (behind a reverse proxy every client shares the proxy's address, so put the limit
in the proxy too). Memory is bounded by ``max_clients``.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LoginThrottle", "LoginThrottleMiddleware"]

log = structlog.get_logger("voicebook.audit")

WINDOW_SECONDS: Final = 60.0


class LoginThrottle:
    """Failed attempts per client address in a sliding window; O(limit) memory per address."""

    def __init__(
        self,
        attempts_per_minute: int,
        *,
        window_seconds: float = WINDOW_SECONDS,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = attempts_per_minute
        self.window = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def failed(self, client: str) -> bool:
        """Count one failure; True when this failure used up the client's allowance."""
        failures = self._recent(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.limit)
            self._evict()
        failures.append(self.clock())
        self._failures.move_to_end(client)
        return len(failures) >= self.limit

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def _evict(self) -> None:
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)  # the address that failed longest ago


def _guarded(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path == "/admin" or path == "/admin/login" or path.startswith("/api/")


class LoginThrottleMiddleware:
    """Count 401s of requests that carried credentials; refuse further ones with 429 once over the limit."""

    def __init__(self, app: ASGIApp, *, throttle: LoginThrottle, cookie_name: str) -> None:
        self.app = app
        self.throttle = throttle
        self.cookie = cookie_name.encode()

    def _carries_credentials(self, scope: Scope) -> bool:
        if scope.get("path") == "/admin/login" and scope.get("method") == "POST":
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization" or (name == b"cookie" and self.cookie in value):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope) or not self._carries_credentials(scope):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait = self.throttle.retry_after(client)
        if wait is not None:
            await self._too_many(send, wait)
            return

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                path = scope.get("path")
                if self.throttle.failed(client):
                    log.warning(
                        "admin.login_throttled",
                        client=client,
                        path=path,
                        detail=f"{self.throttle.limit} failed admin logins within a minute",
                    )
                else:
                    log.warning("admin.login_failed", client=client, path=path)
            await send(message)

        await self.app(scope, receive, watching)

    @staticmethod
    async def _too_many(send: Send, wait: int) -> None:
        body = json.dumps({"detail": "too many failed logins; try again later"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(wait).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
