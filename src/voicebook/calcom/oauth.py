"""OAuth for a company's own Cal.com: the refresh-token grant and an ``httpx.Auth`` that uses it.

Cal.com's access tokens live 60 minutes and every refresh hands out a *new* refresh token (the old one
stops working). So the token is refreshed shortly before it expires, and once more when Cal.com answers
401 anyway (revoked early, clock skew); a second 401 is the answer. Storing the rotated refresh token is
the caller's job (``calcom.registry``), in the same transaction that read the old one.

A refused refresh (400 ``invalid_grant``, 401) raises ``CredentialRefused``: the company must be
re-authorised by a person, and nothing retries it in a loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from voicebook.calcom.errors import CalcomUnavailable

TOKEN_PATH = "/v2/auth/oauth2/token"
# Refresh this long before the access token's end, so no request is sent with a token about to lapse.
REFRESH_MARGIN_SECONDS = 300.0


class CredentialRefused(Exception):
    """Cal.com refused a company's credential itself (revoked, wrong secret, used-up refresh token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenGrant:
    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float  # epoch seconds

    def fresh(self, now: float | None = None) -> bool:
        return self.expires_at - REFRESH_MARGIN_SECONDS > (time.time() if now is None else now)


async def exchange_refresh_token(
    http: httpx.AsyncClient, *, client_id: str, client_secret: SecretStr, refresh_token: SecretStr
) -> TokenGrant:
    """``POST /v2/auth/oauth2/token`` with ``grant_type=refresh_token`` (RFC 6749 §6)."""
    try:
        response = await http.post(
            TOKEN_PATH,
            data={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret.get_secret_value(),
                "refresh_token": refresh_token.get_secret_value(),
            },
        )
    except httpx.TransportError as exc:
        raise CalcomUnavailable(f"Cal.com oauth token: {type(exc).__name__}") from None
    if response.status_code in (400, 401, 403):
        error = "refused"
        try:
            body = response.json()
            if isinstance(body, dict):
                error = str(body.get("error") or body.get("message") or error)[:100]
        except ValueError:
            pass
        raise CredentialRefused(f"OAuth refresh refused ({response.status_code} {error})")
    if not response.is_success:
        raise CalcomUnavailable(f"Cal.com oauth token: {response.status_code}")
    try:
        body = response.json()
        data = body.get("data", body) if isinstance(body, dict) else {}
        access, refresh = str(data["access_token"]), str(data["refresh_token"])
        expires_in = float(data.get("expires_in", 3600))
    except (ValueError, KeyError, TypeError):
        raise CalcomUnavailable("Cal.com oauth token: malformed answer") from None
    return TokenGrant(SecretStr(access), SecretStr(refresh), time.time() + expires_in)


TokenSource = Callable[[str | None], Awaitable[SecretStr]]
"""``source(failed)``: a usable access token; ``failed`` is the token Cal.com just refused (refresh it)."""


class OAuthBearer(httpx.Auth):
    """Bearer auth from a token source: refreshed before expiry by the source, and once on a 401."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "OAuthBearer()"

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._source(None)
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401:
            # A 401 is refused before anything is processed, so sending it again cannot duplicate.
            token = await self._source(token.get_secret_value())
            request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            yield request
