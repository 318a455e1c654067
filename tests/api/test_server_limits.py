"""The server's connection limits against bounded slow clients, over real sockets to a real uvicorn.

Small limits (half-second timeouts, a cap of a few connections) keep the test short; the defaults are the
same code with larger numbers. After every attack the server must still answer ``/healthz``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.live import live_server

from voicebook.api.server_limits import HeaderLimitsProtocol, uvicorn_options
from voicebook.settings import Settings

TIMEOUT = 0.5


class FastHeaderTimeout(HeaderLimitsProtocol):
    header_timeout = TIMEOUT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("limits")) / "limits.db"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        reconcile_interval_seconds=0,
        body_read_timeout_seconds=TIMEOUT,
        keep_alive_timeout_seconds=1,
        max_connections=8,
        max_header_bytes=4096,
        _env_file=None,  # type: ignore[call-arg]
    )
    with live_server(settings, **{**uvicorn_options(settings), "http": FastHeaderTimeout}) as base:
        yield base


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes; True when it did within ``seconds``."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


def _healthy(base: str) -> None:
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def test_half_sent_headers_are_closed_after_the_header_timeout(server: str) -> None:
    clients = [_connect(server) for _ in range(6)]
    for sock in clients:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    for sock in clients:
        closed, _ = _closed_within(sock, 5)
        assert closed
        sock.close()
    assert time.monotonic() - started < 5  # generous: the machine may be busy; unbounded is never
    _healthy(server)


def test_trickled_headers_do_not_reset_the_timer(server: str) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        while time.monotonic() - started < 10:
            sock.sendall(b"X-A: b\r\n")
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert time.monotonic() - started < 5  # generous: the machine may be busy; unbounded is never
    sock.close()
    _healthy(server)


def test_slow_bodies_get_408_and_are_closed(server: str) -> None:
    clients = [_connect(server) for _ in range(6)]
    for sock in clients:
        sock.sendall(b'POST /retell/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"event":')
    for sock in clients:
        closed, answer = _closed_within(sock, 5)
        assert closed
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        sock.close()
    _healthy(server)


def test_an_oversized_request_head_is_refused(server: str) -> None:
    sock = _connect(server)
    # Still incomplete past max_header_bytes: refused at once, not buffered until the header timeout.
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000)
    closed, answer = _closed_within(sock, 5)
    assert closed
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]  # uvicorn: "Invalid HTTP request received."
    # The header timeout closes without a word; an answer proves the size limit refused it.
    sock.close()
    _healthy(server)


def test_a_head_sent_in_small_pieces_is_refused_once_it_passes_the_limit(server: str) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(100):  # 100 × 100 bytes, each piece under the limit, the head far over it
            sock.sendall(b"X-Piece: " + b"a" * 89 + b"\r\n")
            time.sleep(0.002)
    except (BrokenPipeError, ConnectionResetError):
        pass
    closed, answer = _closed_within(sock, 5)
    assert closed
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    sock.close()
    _healthy(server)


def test_a_body_in_the_same_packet_as_its_head_is_not_counted_as_head(server: str) -> None:
    body = b'{"event": "' + b"a" * 9_000 + b'"}'  # over the head limit, under the body limit
    head = b"POST /retell/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    sock = _connect(server)
    sock.sendall(head + body)
    sock.settimeout(5)
    assert sock.recv(4096).startswith(b"HTTP/1.1 401")  # unsigned: the app answered, the server did not
    sock.close()


def test_the_head_limit_applies_to_each_request_of_a_kept_alive_connection(server: str) -> None:
    sock = _connect(server)
    sock.settimeout(5)
    for _ in range(4):  # 4 heads of ~3 KB in two pieces each: together over the limit, each under it
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3_000)
        time.sleep(0.05)
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()


def test_connections_beyond_the_cap_get_503_until_the_slow_ones_are_gone(server: str) -> None:
    hogs = [_connect(server) for _ in range(8)]
    for sock in hogs:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.1)
    refused = httpx.get(f"{server}/healthz", timeout=5)
    assert refused.status_code == 503
    for sock in hogs:
        assert _closed_within(sock, 5)[0]
        sock.close()
    _healthy(server)


def test_keep_alive_connections_are_closed_when_idle(server: str) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    closed, _ = _closed_within(sock, 5)
    assert closed
    assert time.monotonic() - started < 5  # generous: the machine may be busy; unbounded is never
    sock.close()


def _answer_to(server: str, request: bytes) -> bytes:
    """Send a whole request in one packet; the server's answer, once it closed the connection."""
    sock = _connect(server)
    sock.sendall(request)
    closed, answer = _closed_within(sock, 5)
    sock.close()
    assert closed
    return answer


def test_a_whole_oversized_head_in_one_packet_is_refused(server: str) -> None:
    """Complete and in one read: the parsed count refuses it (the incomplete-head count never sees it)."""
    answer = _answer_to(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    _healthy(server)


def test_many_small_headers_in_one_packet_are_refused_past_the_limit(server: str) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(120))  # ≈ 6 KB, limit 4 KB
    answer = _answer_to(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    _healthy(server)


def test_a_long_target_counts_as_head(server: str) -> None:
    answer = _answer_to(server, b"GET /healthz?q=" + b"a" * 6_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    _healthy(server)


def test_a_whole_head_just_under_the_limit_is_served(server: str) -> None:
    """The limit is on the head's size, not a guess: a head of about 3.9 KB (limit 4 KB) is answered."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3_800 + b"\r\nConnection: close\r\n\r\n"
    answer = _answer_to(server, head)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
