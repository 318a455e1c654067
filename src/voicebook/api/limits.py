"""Request limits enforced before a route sees the request: body size, body read time, JSON depth.

Why a pure ASGI middleware and not a dependency: a dependency runs after Starlette has been asked for the
body, and ``await request.body()`` reads it whole, so a 10 MB body would already sit in memory before any
check. Here ``Content-Length`` is checked before the first byte of the body is read, and a chunked body is
counted while it streams in, so no route ever holds more than ``VOICEBOOK_MAX_BODY_BYTES``.

The body read timeout is a deadline for the *whole* body (not per chunk), so a client trickling one byte
every few seconds cannot hold a worker's request slot for ever. Header read time and idle keep-alive are the
server's (``voicebook.api.server_limits``), because an ASGI app only sees a request once its headers are in.

``loads_object`` is the one JSON parser for request bodies from outside: it refuses nesting deeper than
``VOICEBOOK_MAX_JSON_DEPTH`` and answers every malformed body with ``BodyError`` (a 400). ``json.loads``
recurses, but in C with Python's recursion check: 100 000 ``[`` end in a ``RecursionError`` at about a
thousand levels, which is caught here (uncaught, it was a 500); nothing of ours recurses.
"""

from __future__ import annotations

import asyncio
import json
import re
from itertools import accumulate
from typing import Any, Final

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyError", "BodyLimitsMiddleware", "json_depth", "loads_object"]

log = structlog.get_logger("voicebook.api")

# A JSON string, to its closing quote or to the end of the input when it has none (so an unterminated
# string is never rescanned from each of its quotes: linear time on any input).
_STRING: Final = re.compile(rb'"(?:[^"\\]+|\\.)*"?', re.S)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BodyError(HTTPException):
    """A request body we will not read or parse; an HTTPException so routes answer it as a 4xx."""


def json_depth(raw: bytes) -> int:
    """The deepest bracket nesting in ``raw``, ignoring brackets inside strings; never recurses.

    Linear in the size of the body, whatever it holds, and without a Python step per token: the strings are
    cut out and the other bytes dropped in C (``re.sub``, ``bytes.translate``), and the running depth over
    the brackets left is a C-level ``accumulate``.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def _nesting(value: object, stop_after: int) -> int:
    """How deep a parsed JSON value nests arrays and objects (a scalar: 0), counted up to ``stop_after + 1``.

    Level by level, never recursing: each pass keeps the containers one level down, so the work is one look
    at each value of the document.
    """
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level and depth <= stop_after:
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) is dict or type(child) is list
        ]
    return depth


def loads_object(raw: bytes, max_depth: int) -> dict[str, Any]:
    """Parse a request body that must be a JSON object no deeper than ``max_depth``; 400 otherwise.

    Parsed first, then measured: ``json.loads`` refuses nesting past Python's recursion limit by itself
    (``RecursionError``, a 400 here), and measuring the parsed value costs a quarter of scanning the bytes
    of a body that carries a transcript. The bytes are scanned (``json_depth``) only for a body refused
    anyway, to tell "too deep" from "not JSON" as before. Nothing is measured when the body holds no more
    than ``max_depth`` opening brackets in all (a count in C), as a function call without a transcript.
    For a UTF-8 body (the only encoding Retell and Cal.com send) the answer is the one the byte scan alone
    gives; ``tests/api/test_edges.py`` holds the two to that.
    """
    many = raw.count(b"[") + raw.count(b"{") > max_depth
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        if many and json_depth(raw) > max_depth:
            raise BodyError(400, f"JSON nested deeper than {max_depth} levels") from None
        raise BodyError(400, "body is not JSON") from None
    if many and _nesting(data, max_depth) > max_depth:
        raise BodyError(400, f"JSON nested deeper than {max_depth} levels")
    if not isinstance(data, dict):
        raise BodyError(400, "body is not a JSON object")
    return data


def _json_response(status: int, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitsMiddleware:
    """Refuse bodies over ``max_body_bytes`` (413) and bodies not complete within ``read_timeout`` (408)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, read_timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = self._declared_length(scope)
        if declared == "malformed":
            await self._refuse(send, 400, "malformed Content-Length")
            return
        if isinstance(declared, int) and declared > self.max_body_bytes:
            log.warning("http.body_too_large", path=scope.get("path"), declared=declared)
            await self._refuse(send, 413, f"request body larger than {self.max_body_bytes} bytes")
            return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_seconds
        received = 0
        body_done = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                log.warning("http.body_timeout", path=scope.get("path"), received=received)
                raise BodyError(408, "request body not received in time", {"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    log.warning("http.body_too_large", path=scope.get("path"), received=received)
                    raise BodyError(413, f"request body larger than {self.max_body_bytes} bytes")
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyError as exc:
            # Raised from receive() inside code that is not a route (or a route that let it through).
            if response_started:
                raise
            await self._refuse(send, exc.status_code, exc.detail)

    @staticmethod
    def _declared_length(scope: Scope) -> int | str | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.strip()
                if not text or len(text) > 20 or not text.isdigit() or not text.isascii():
                    return "malformed"
                return int(text)
        return None

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        start, body = _json_response(status, detail)
        await send(start)
        await send(body)
