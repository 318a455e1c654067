"""Who may see the operator's page: the admin token, as a bearer header or as a session cookie.

A browser cannot send a bearer header from the address bar, hence the cookie set by the login form. The
cookie never holds the token itself: it is ``<issued unix time>.<HMAC-SHA256(token, issued)>``, HttpOnly
and SameSite=Strict, valid for ``SESSION_SECONDS``, and changing the token logs every browser out.
Without a configured token the whole surface answers 503, so an unset variable can never mean "open to
everyone".
"""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import Enum
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request, status

from voicebook.api.parsing import parse_issued
from voicebook.settings import Settings

COOKIE: Final = "voicebook_admin"
SESSION_SECONDS: Final = 12 * 3600
DISABLED: Final = "admin disabled: set VOICEBOOK_ADMIN_TOKEN"
BEARER: Final = {"WWW-Authenticate": "Bearer"}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong admin token"},
    503: {"description": DISABLED},
}


class Access(Enum):
    GRANTED = "granted"
    DENIED = "denied"
    DISABLED = "disabled"


def admin_token(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def _session_mac(token: str, issued: int) -> str:
    return hmac.new(token.encode(), f"voicebook-admin:{issued}".encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, issued: int | None = None) -> str:
    """The cookie value for a login at ``issued`` (unix seconds): proves the token without holding it."""
    issued = int(time.time()) if issued is None else issued
    return f"{issued}.{_session_mac(token, issued)}"


def _valid_cookie(token: str, value: str) -> bool:
    issued = parse_issued(value)
    if issued is None:
        return False
    mac = value.partition(".")[2]
    if not -60 <= time.time() - issued <= SESSION_SECONDS:
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(token, issued).encode())


def check_access(request: Request) -> Access:
    """Bearer header or session cookie, compared in constant time."""
    token = admin_token(request)
    if token is None:
        return Access.DISABLED
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return Access.GRANTED
    cookie = request.cookies.get(COOKIE)
    if cookie and _valid_cookie(token, cookie):
        return Access.GRANTED
    return Access.DENIED


def require_admin(request: Request) -> None:
    """Dependency of the JSON endpoints: 503 when no token is configured, 401 when it is not presented."""
    access = check_access(request)
    if access is Access.DISABLED:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=DISABLED)
    if access is Access.DENIED:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="admin token required", headers=BEARER)


AdminAccess = Annotated[None, Depends(require_admin)]
