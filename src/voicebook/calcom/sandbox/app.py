"""The sandbox: an in-memory Cal.com v2 (bookings + slots) speaking the real wire format.

It exists so the whole service, including its duplicate-prevention logic, can be exercised
against Cal.com's actual dedupe behaviour (mechanism A returns *someone else's* booking) and
against every failure a phone call can hit, without a Cal.com account.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from voicebook.calcom.sandbox.accounts import AccountAccess, account_routes
from voicebook.calcom.sandbox.clock import SandboxClock
from voicebook.calcom.sandbox.engine import BookingEngine
from voicebook.calcom.sandbox.faults import Fault, Faults
from voicebook.calcom.sandbox.inputs import ApiError
from voicebook.calcom.sandbox.models import SandboxEventType, StoredBooking
from voicebook.calcom.sandbox.render import booking_output, error_body, webhook_body
from voicebook.calcom.sandbox.routes import Handled, api_routes
from voicebook.calcom.sandbox.webhooks import WebhookSender

RATE_LIMIT_WINDOW = timedelta(seconds=60)
THROTTLED = "CustomThrottlerGuard - Too many requests. Please try again later."

Handler = Callable[[Request, bool], Awaitable[Handled]]
# Where an in-process sandbox learns event types configured after it started (the tenants in the
# database); called only when a request names an event type the sandbox does not know.
EventTypeSource = Callable[[], Awaitable[Iterable[SandboxEventType]]]
_UNKNOWN_EVENT_TYPE = "Event type with id "


class Sandbox:
    def __init__(
        self,
        *,
        clock: SandboxClock | None = None,
        state_file: str | Path | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        control_enabled: bool = False,
        in_process: bool = True,
        hang_seconds: float = 30.0,
        api_key: str | None = None,
        rate_limit: int = 120,
        enforce_rate_limit: bool = False,
        fault_seed: int | None = None,
        event_types: Iterable[SandboxEventType] = (),
        event_type_source: EventTypeSource | None = None,
    ) -> None:
        self.clock = clock or SandboxClock()
        self.event_type_source = event_type_source
        self.faults = Faults(fault_seed)
        self.engine = BookingEngine(self.clock, Path(state_file) if state_file else None)
        self.webhooks = WebhookSender(webhook_url, webhook_secret, webhook_transport)
        self.control_enabled = control_enabled
        self.in_process = in_process
        self.hang_seconds = hang_seconds
        self._api_key = api_key
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        self._window: tuple[datetime, int] | None = None
        # Several accounts (issue 16, sandbox/accounts.py): which credentials this one accepts, and
        # every bearer credential it was sent (for the isolation tests).
        self.access: AccountAccess | None = None
        self.tokens_seen: list[str] = []
        for event_type in event_types:
            self.add_event_type(event_type)
        self.app = self._build_app()

    def __repr__(self) -> str:
        return f"Sandbox(event_types={sorted(self.engine.event_types)}, in_process={self.in_process})"

    # --- test and control surface ---------------------------------------------------------------

    def add_event_type(self, event_type: SandboxEventType) -> None:
        self.engine.add_event_type(event_type)

    @property
    def bookings(self) -> list[StoredBooking]:
        return list(self.engine.bookings)

    def output(self, booking: StoredBooking) -> dict[str, Any]:
        return booking_output(booking, self.engine.event_type(booking.event_type_id))

    async def drain_webhooks(self) -> None:
        await self.webhooks.drain()

    def emit(self, trigger: str, booking: StoredBooking, extra: dict[str, Any] | None = None) -> None:
        if not self.webhooks.url:
            return  # nothing would be sent, so do not build the body
        et = self.engine.event_type(booking.event_type_id)
        self.webhooks.send(webhook_body(trigger, booking, et, self.clock.now(), extra))

    def authenticated(self, request: Request, *, required: bool) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        ok = scheme.lower() == "bearer" and bool(token.strip())
        if ok:
            self.tokens_seen.append(token.strip())
        if ok and self.access is not None:
            self.access.check(token.strip(), self.clock.now())
        elif ok and self._api_key is not None and token.strip() != self._api_key:
            raise ApiError(401, "ApiAuthStrategy - api key - Invalid API Key")
        if required and not ok:
            raise ApiError(
                401,
                "No authentication method provided. Either pass an API key as 'Bearer' header "
                "or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers",
            )
        return ok

    # --- request pipeline -----------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        routes = api_routes(self)
        routes.extend(account_routes(self))
        if self.control_enabled:
            from voicebook.calcom.sandbox.control import control_routes

            routes.extend(control_routes(self))
        return Starlette(routes=routes, exception_handlers={HTTPException: self._http_exception})

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Cannot {request.method} {request.url.path}"
        return self._error(ApiError(status, message), request.url.path)

    def _error(self, error: ApiError, path: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            error_body(error, path, self.clock.now()),
            status_code=error.status,
            headers={**(headers or {}), **error.headers},
        )

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        now = self.clock.now()
        if self._window is None or now - self._window[0] >= RATE_LIMIT_WINDOW:
            self._window = (now, 0)
        started, count = self._window[0], self._window[1] + 1
        self._window = (started, count)
        reset = max(math.ceil((started + RATE_LIMIT_WINDOW - now).total_seconds()), 0)
        headers = {
            "X-RateLimit-Limit-Default": str(self.rate_limit),
            "X-RateLimit-Remaining-Default": str(max(self.rate_limit - count, 0)),
            "X-RateLimit-Reset-Default": str(reset),
        }
        return headers, self.enforce_rate_limit and count > self.rate_limit

    async def serve(self, request: Request, endpoint: str, version: str, handler: Handler) -> Response:
        """Faults, rate-limit headers, version check and error envelopes around one endpoint."""
        fired = self.faults.draw(endpoint)
        for fault in fired:
            if fault.kind == "latency":
                await asyncio.sleep(self.faults.latency(fault))
        headers, over_limit = self._rate_headers()
        throttle = next((f for f in fired if f.kind == "rate_limit"), None)
        if throttle is not None or over_limit:
            if throttle is not None:
                headers["X-RateLimit-Remaining-Default"] = "0"
                headers["X-RateLimit-Reset-Default"] = str(throttle.reset_seconds)
            return self._error(ApiError(429, THROTTLED), request.url.path, headers)
        before = [f for f in fired if f.phase == "before" and _is_break(f)]
        after = [f for f in fired if f.phase == "after" and _is_break(f)]
        if before:
            broken = await self._break(before[0], None, request, headers)
            if broken is not None:
                return broken
        try:
            if request.headers.get("cal-api-version") != version:
                raise _version_error(request, version)
            skip = any(f.kind == "skip_availability" for f in fired)
            try:
                status, body = await handler(request, skip)
            except ApiError as error:
                if not await self._learn_event_types(error):
                    raise
                status, body = await handler(request, skip)  # the lookup failed before any change
            response: Response = JSONResponse(body, status_code=status, headers=headers)
        except ApiError as error:
            response = self._error(error, request.url.path, headers)
        if after:
            broken = await self._break(after[0], response, request, headers)
            if broken is not None:
                return broken
        return response

    async def _learn_event_types(self, error: ApiError) -> bool:
        """An unknown event type id: ask the source for new ones (a company loaded while we run).

        Like one Cal.com account, the sandbox then knows every event type configured so far, without a
        restart. True when something new was learnt, so the request is worth answering again.
        """
        if self.event_type_source is None or error.status != 404:
            return False
        if not error.message.startswith(_UNKNOWN_EVENT_TYPE):
            return False
        learnt = False
        for event_type in await self.event_type_source():
            if self.engine.event_types.get(event_type.id) != event_type:
                self.add_event_type(event_type)
                learnt = True
        return learnt

    async def _break(
        self, fault: Fault, response: Response | None, request: Request, headers: dict[str, str]
    ) -> Response | None:
        path = request.url.path
        if fault.kind == "http_error":
            # phase "after": the change is stored, then this status (e.g. a 503 from the edge) is all
            # the client hears — the ambiguous outcome the domain must resolve by lookup.
            reason = httpx.codes.get_reason_phrase(fault.status) or "Internal server error"
            return self._error(ApiError(fault.status, reason), path, headers)
        if fault.kind == "read_timeout":
            if self.in_process:
                raise httpx.ReadTimeout(f"sandbox fault: read timeout ({fault.phase} processing)")
            await asyncio.sleep(self.hang_seconds)
            return response or self._error(ApiError(504, "Gateway Timeout"), path, headers)
        if self.in_process:
            raise httpx.RemoteProtocolError("sandbox fault: server disconnected")
        return _TruncatedResponse()


def _is_break(fault: Fault) -> bool:
    return fault.kind in ("read_timeout", "connection_reset", "http_error")


def _version_error(request: Request, version: str) -> ApiError:
    sent = request.headers.get("cal-api-version")
    # Cal.com routes a missing or unknown version to the 2024-04-15 controller, whose body and
    # output shapes differ; the sandbox emulates only the current versions and says so.
    return ApiError(
        400,
        f"cal-api-version {sent or '(missing)'} routes to the legacy 2024-04-15 API, which expects "
        f"another body (responses, timeZone, language, metadata); send cal-api-version: {version}",
        errors=["responses must be an object", "timeZone must be a string"],
    )


class _TruncatedResponse(Response):
    """Promise a body, send part of it, then fail: the server drops the connection mid-answer."""

    def __init__(self) -> None:
        super().__init__(content=b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"status":', "more_body": True})
        raise ConnectionResetError("sandbox fault: connection reset")
