"""Browser hardening headers for the operator's surface (``/admin…`` and ``/api/…``).

The admin page shows booking data behind a token, so a browser must not frame it (clickjacking), guess
its content type, leak its URL in a ``Referer``, keep it in a shared cache, or run script that the page
did not ship itself. The CSP therefore allows only same-origin resources: the page's CSS is a static file
(``voicebook.api.admin.assets``), it has no script at all, and no inline style. ``X-Frame-Options`` repeats
``frame-ancestors`` for browsers that predate CSP level 2.

A pure ASGI middleware rather than per-route headers: every response on those paths gets them, including
401/503 pages, validation errors and anything added later.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "SecurityHeadersMiddleware"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PREFIXES: Final = ("/admin", "/api/")


def _protected(path: str) -> bool:
    return path == "/api" or path.startswith(_PREFIXES)


class SecurityHeadersMiddleware:
    """Add ``SECURITY_HEADERS`` to every response under ``/admin`` and ``/api/``.

    ``Cache-Control`` is forced to ``no-store`` except for the static stylesheet, which holds no data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not _protected(path):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/admin/assets/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name == "Cache-Control" and static:
                        continue
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
