"""Connection limits of the HTTP server: what uvicorn is told, and the two bounds on a request head it lacks.

An ASGI app sees a request only once its headers are complete, so the limits on *getting* there belong to
the server. uvicorn has some of them as options (``timeout_keep_alive``, ``limit_concurrency``) but none for
a client that opens a connection and sends its headers one byte at a time (800 such connections were held
for as long as the clients liked), and with httptools none on the size of a request head either: its
parser keeps a header that never ends in memory, however long it grows. ``HeaderLimitsProtocol`` is
uvicorn's httptools protocol plus both bounds:

* a connection waiting for request headers for longer than ``VOICEBOOK_HEADER_READ_TIMEOUT_SECONDS`` is
  closed;
* a request head larger than ``VOICEBOOK_MAX_HEADER_BYTES`` is refused with the same
  ``400 Invalid HTTP request received.`` that uvicorn sends for a malformed head, and the connection
  closed: while it is still incomplete (the bytes received, which the parser may be holding), and once
  parsed (the target and the headers it holds, however the bytes were split into packets: a whole head
  that arrives in one read is refused just like one that trickles in).

The body's read time and size are limited inside the app (``api.limits``), where a JSON answer can still be
sent.

httptools rather than h11 because it is the cheaper parser per request (h11 parses in Python) and h11's one
advantage here, ``h11_max_incomplete_event_size``, is the byte count kept in this class. The head limit is
read from that same uvicorn option (``Config.h11_max_incomplete_event_size``), which uvicorn hands to every
protocol, so ``uvicorn_options`` stays the one place that turns the settings into uvicorn's configuration
and a worker process needs nothing but the class's import path.
"""

from __future__ import annotations

# First: with `--workers N` each worker process unpickles HeaderLimitsProtocol, importing this module,
# before it imports the app; voicebook.preload must still come before structlog (see that module).
import voicebook.preload  # noqa: F401

# isort: split
import asyncio
from typing import Any, ClassVar, Final

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from voicebook.settings import Settings, get_settings

__all__ = ["DEFAULT_MAX_HEAD_BYTES", "HeaderLimitsProtocol", "uvicorn_options"]

log = structlog.get_logger("voicebook.api")

# h11's own default for h11_max_incomplete_event_size, when uvicorn is run without the option.
DEFAULT_MAX_HEAD_BYTES: Final = 16 * 1024
# What uvicorn answers to a head its parser refuses; an over-large head gets the same words.
INVALID_REQUEST: Final = "Invalid HTTP request received."


class HeadTooLarge(Exception):
    """A parsed request head passed the limit (raised inside a parser callback, see ``_count_parsed``)."""


class HeaderLimitsProtocol(HttpToolsProtocol):
    """Bound the time and the bytes a request head may take before the app sees the request.

    The timer runs while the connection waits for a request head: from the connection's start, and again
    from the first byte of each later request on a kept-alive connection (idle time before that byte is
    ``timeout_keep_alive``'s). ``header_timeout`` None means "read it from the settings", which is what
    each worker process does; tests set it on a subclass.

    The byte count starts with each request (``on_message_begin``) and ends with its head
    (``on_headers_complete``). It is taken after the parser has had the chunk, so a chunk that holds a whole
    head and the body after it is never counted as head; a chunk that leaves a head incomplete counts
    whole. The count is therefore never less than the head's bytes received so far (what the parser may be
    holding), and more only by the end of a previous request in the same chunk (HTTP pipelining).
    A second count adds up what the parser hands over (the target, each header as ``name: value``), so a
    complete head is measured by its content whatever the packets were; either count past the limit
    refuses the request.
    """

    header_timeout: ClassVar[float | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_cycle: object = None
        limit = self.config.h11_max_incomplete_event_size
        self._max_head_bytes = DEFAULT_MAX_HEAD_BYTES if limit is None else limit
        self._in_head = False
        self._head_bytes = 0
        self._parsed_head_bytes = 0

    def _timeout(self) -> float:
        timeout = type(self).header_timeout
        return get_settings().header_read_timeout_seconds if timeout is None else timeout

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_cycle = self.cycle
        self._header_timer = self.loop.call_later(self._timeout(), self._expired)

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return  # a request is being served; the next byte after it arms a new timer
        if self.cycle is not self._header_cycle:
            self._arm()  # a request came and went meanwhile: this is a new wait
            return
        log.warning("http.header_timeout", client=self.client[0] if self.client else None)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._waiting_for_head():
            self._arm()
        super().data_received(data)
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes and not self.transport.is_closing():
                self._in_head = False
                self._log_too_large(self._head_bytes)
                self.send_400_response(INVALID_REQUEST)

    def _log_too_large(self, size: int) -> None:
        log.warning("http.header_too_large", client=self.client[0] if self.client else None, received=size)

    def _count_parsed(self, size: int) -> None:
        """Add parsed head bytes; past the limit, refuse the request as uvicorn refuses a malformed head.

        Raised inside a parser callback, the exception leaves ``feed_data`` as httptools' parser error,
        which uvicorn's ``data_received`` answers with its 400 and a closed connection.
        """
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self._max_head_bytes:
            self._in_head = False
            self._log_too_large(self._parsed_head_bytes)
            raise HeadTooLarge(self._parsed_head_bytes)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._parsed_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # as sent: "name: value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that put the settings' limits in force."""
    return {
        "http": HeaderLimitsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_connections,
        # Read by HeaderLimitsProtocol as its head limit (see the module's docstring).
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
