"""Connection limits of the HTTP server: what uvicorn is told, and the header read timeout it lacks.

An ASGI app sees a request only once its headers are complete, so the limits on *getting* there belong to
the server. uvicorn has most of them as options (``timeout_keep_alive``, ``limit_concurrency``,
``h11_max_incomplete_event_size``) but none for a client that opens a connection and sends its headers one
byte at a time: 800 such connections were held for as long as the clients liked. ``HeaderTimeoutProtocol``
is uvicorn's h11 protocol plus one timer: a connection waiting for request headers for longer than
``VOICEBOOK_HEADER_READ_TIMEOUT_SECONDS`` is closed. The body's read time is limited inside the app
(``api.limits``), where a 408 can still be sent.

h11 rather than httptools on purpose: only the h11 protocol bounds the size of the request head
(``h11_max_incomplete_event_size``); a booking backend's request rate does not need httptools' speed.
"""

from __future__ import annotations

# First: with `--workers N` each worker process unpickles HeaderTimeoutProtocol, importing this module,
# before it imports the app; voicebook.preload must still come before structlog (see that module).
import voicebook.preload  # noqa: F401

# isort: split
import asyncio
from typing import Any, ClassVar

import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from voicebook.settings import Settings, get_settings

__all__ = ["HeaderTimeoutProtocol", "uvicorn_options"]

log = structlog.get_logger("voicebook.api")


class HeaderTimeoutProtocol(H11Protocol):
    """Close a connection that has not completed a request head within ``header_timeout`` seconds.

    The timer runs while the connection waits for a request head: from the connection's start, and again
    from the first byte of each later request on a kept-alive connection (idle time before that byte is
    ``timeout_keep_alive``'s). ``header_timeout`` None means "read it from the settings", which is what
    each worker process does; tests set it on a subclass.
    """

    header_timeout: ClassVar[float | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_cycle: object = None

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

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that put the settings' limits in force."""
    return {
        "http": HeaderTimeoutProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_connections,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
