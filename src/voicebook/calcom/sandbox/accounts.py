"""The sandbox as several Cal.com accounts (issue 16): credentials, OAuth, revocation, one host each.

Each account is its own ``Sandbox`` (its own event types, bookings and rate-limit window, so a per-key
limit is per account) with an ``AccountAccess``: the API key it accepts, or an OAuth client whose
``POST /v2/auth/oauth2/token`` refresh-token grant rotates the refresh token (the old one stops
working, as in Cal.com) and issues access tokens of 60 minutes. ``revoke()`` makes every credential of
the account fail with 401 (and the token endpoint with ``invalid_grant``), as a revoked key or an
uninstalled app does.

``SandboxAccounts`` routes requests by host — ``https://acme.cal.test`` to one account,
``https://api.cal.eu`` to another — through one ``httpx`` transport, so the real client and registry
are tested end to end without an account. Every credential an account saw is kept in ``tokens_seen``,
which is what the isolation tests check: each company's requests reach only its own account, with its
own credential.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebook.calcom.sandbox.inputs import ApiError

if TYPE_CHECKING:
    from voicebook.calcom.sandbox.app import Sandbox

TOKEN_PATH = "/v2/auth/oauth2/token"
EVENT_TYPES_API_VERSION = "2024-06-14"
INVALID_KEY = "ApiAuthStrategy - api key - Invalid API Key"


@dataclass
class AccountAccess:
    """Which credentials an account accepts; ``check`` raises the 401 Cal.com would answer."""

    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    token_lifetime: timedelta = timedelta(minutes=60)
    revoked: bool = False
    access_tokens: dict[str, datetime] = field(default_factory=dict)
    refreshes: int = 0

    def __repr__(self) -> str:
        return f"AccountAccess(client_id={self.client_id!r}, revoked={self.revoked})"

    def check(self, token: str, now: datetime) -> None:
        if not self.revoked:
            if self.api_key is not None and token == self.api_key:
                return
            expires = self.access_tokens.get(token)
            if expires is not None and expires > now:
                return
        raise ApiError(401, INVALID_KEY)

    def refresh(self, form: dict[str, str], now: datetime) -> tuple[int, dict[str, Any]]:
        """The refresh-token grant (RFC 6749 §6), with rotation."""
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if (
            self.client_id is None
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return 401, {"error": "invalid_client"}
        if self.revoked or not form.get("refresh_token") or form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant"}
        access = f"sbx_at_{secrets.token_hex(12)}"
        self.refresh_token = f"sbx_rt_{secrets.token_hex(12)}"
        self.access_tokens[access] = now + self.token_lifetime
        self.refreshes += 1
        return 200, {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": self.refresh_token,
            "expires_in": int(self.token_lifetime.total_seconds()),
        }

    def revoke(self) -> None:
        self.revoked = True
        self.access_tokens.clear()


def account_routes(sandbox: Sandbox) -> list[Route]:
    """The token endpoint and ``GET /v2/event-types`` (what ``tenants sync`` lists)."""

    async def token(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                loaded = json.loads(raw or "{}")
            except ValueError:
                loaded = {}
            form = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        else:
            form = dict(parse_qsl(raw))
        access = sandbox.access
        if access is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        status, body = access.refresh(form, sandbox.clock.now())
        return JSONResponse(body, status_code=status)

    async def list_event_types(request: Request, _: bool) -> tuple[int, Any]:
        sandbox.authenticated(request, required=True)
        data = [
            {
                "id": et.id,
                "slug": et.slug,
                "title": et.title or et.slug,
                "lengthInMinutes": et.length_minutes,
                "schedulingType": et.scheduling_type if et.is_round_robin else None,
            }
            for et in sorted(sandbox.engine.event_types.values(), key=lambda e: e.id)
        ]
        return 200, {"status": "success", "data": data}

    async def event_types(request: Request) -> Response:
        return await sandbox.serve(request, "event_types.list", EVENT_TYPES_API_VERSION, list_event_types)

    async def team_event_types(request: Request) -> Response:
        return await sandbox.serve(
            request, "team_event_types.list", EVENT_TYPES_API_VERSION, list_event_types
        )

    return [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route("/v2/event-types", event_types, methods=["GET"]),
        Route("/v2/teams/{team_id:int}/event-types", team_event_types, methods=["GET"]),
    ]


class SandboxAccounts:
    """Several sandbox accounts behind one transport, chosen by the request's host."""

    def __init__(self) -> None:
        self.by_host: dict[str, Sandbox] = {}

    def __repr__(self) -> str:
        return f"SandboxAccounts(hosts={sorted(self.by_host)})"

    def add(self, base_url: str, sandbox: Sandbox, access: AccountAccess) -> Sandbox:
        sandbox.access = access
        self.by_host[httpx.URL(base_url).host] = sandbox
        return sandbox

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return _ByHost({host: httpx.ASGITransport(app=sb.app) for host, sb in self.by_host.items()})


class _ByHost(httpx.AsyncBaseTransport):
    def __init__(self, routes: dict[str, httpx.ASGITransport]) -> None:
        self._routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._routes.get(request.url.host)
        if route is None:
            raise httpx.ConnectError(f"sandbox: no account at {request.url.host}", request=request)
        return await route.handle_async_request(request)
