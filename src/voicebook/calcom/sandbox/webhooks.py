"""Webhook delivery off the request path, signed as Cal.com signs (``X-Cal-Signature-256``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import httpx

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cal-Signature-256"
DELIVERY_TIMEOUT_SECONDS = 5.0


def sign(body: bytes, secret: str | None) -> str:
    """Hex HMAC-SHA256 of the raw body; Cal.com sends a literal when no secret is set."""
    if not secret:
        return "no-secret-provided"
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Fires deliveries as tasks so a slow receiver never delays the booking answer."""

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._secret = secret
        self._transport = transport
        self._pending: set[asyncio.Task[None]] = set()
        self.delivered: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"WebhookSender(url={self.url!r})"

    def send(self, body: dict[str, Any]) -> None:
        if not self.url:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self.url, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, self._secret)}
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False
            ) as client:
                response = await client.post(url, content=raw, headers=headers)
            if response.is_error:
                logger.warning("sandbox webhook %s answered %s", body["triggerEvent"], response.status_code)
            self.delivered.append(body)
        except Exception:  # a broken receiver must never break the sandbox
            logger.exception("sandbox webhook %s delivery failed", body.get("triggerEvent"))
