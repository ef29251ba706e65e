"""The local runtime's HTTP server in process, on loopback: a request must arrive whole within its deadline."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from creditflow.entrypoints.local_http import http_server

DEADLINE = 1.0


def app(environ: dict, start_response) -> list[bytes]:
    """Reads the body, then works longer than the deadline before answering with what it read."""
    body = environ["wsgi.input"].read()
    time.sleep(float(environ.get("HTTP_X_WORK", "0")))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    server = http_server("127.0.0.1", 0, app, 1024, request_seconds=DEADLINE)
    server.prepare()
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    yield server.bind_addr[:2]
    server.stop()
    serving.join(timeout=10)


def trickle(address: tuple[str, int], head: bytes, trickled: bytes, seconds: float) -> tuple[bytes, float]:
    """Send `head`, then `trickled` a byte at a time over `seconds`; what came back, and when it ended."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(head)
        for byte in trickled:
            time.sleep(seconds / len(trickled))
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break
        answer = b""
        try:
            while piece := connection.recv(4096):
                answer += piece
        except OSError:
            pass
    return answer, time.monotonic() - started


def test_headers_trickled_past_the_deadline_lose_their_connection(address) -> None:
    answer, took = trickle(address, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a" * 40 + b"\r\n\r\n", 6 * DEADLINE)
    assert not answer.startswith(b"HTTP/1.1 200") and took < 5 * DEADLINE


def test_a_body_trickled_past_the_deadline_loses_its_connection(address) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
    answer, took = trickle(address, head, b"b" * 40, 6 * DEADLINE)
    assert not answer.startswith(b"HTTP/1.1 200") and took < 5 * DEADLINE


def test_a_request_sent_in_time_may_take_as_long_as_it_needs_to_answer(address) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Work: %.1f\r\nContent-Length: 5\r\n\r\n" % (
        2.5 * DEADLINE)
    answer, took = trickle(address, head, b"hello", DEADLINE / 2)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello") and took >= 2.5 * DEADLINE
