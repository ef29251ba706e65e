"""The local runtime's HTTP server: cheroot, adjusted where it differs from the servers the same app meets elsewhere
(Cloud Functions' and the emulator's): limits, a deadline for a request to arrive, decoded slashes, measured
chunked bodies, refusals as problems."""

from __future__ import annotations

import io
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from cheroot import errors
from cheroot.server import HTTPConnection, HTTPRequest, comma_separated_headers  # type: ignore[attr-defined]
from cheroot.wsgi import Gateway_10, Server

from ..adapters.cpu_turns import CpuTurns
from .http.api import PROBLEM, PROBLEM_BASE
from .http.app import CALLER
from .http.realtime import CLIENT_GONE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

THREADS = 128  # cheroot's workers: one per request, model call or event stream (idle keep-alive connections hold
# none); the app caps the streams and the calls in flight, which hold theirs for long, at 32 and 64
ACCEPT_QUEUE = 256  # the listen backlog: 20 clients connecting at once overflow the default of 5 (connection resets)
SHUTDOWN_SECONDS = 30.0
MAX_HEADERS = 64 * 1024  # request line and headers; cheroot's default is no limit (a 50 MB header was held whole)
OVERSIZED_READ = 16 * 1024 * 1024  # the most of a refused (413) body read before the connection closes
READ_SIZE = 64 * 1024
REQUEST_SECONDS = 20.0  # the most a client may take to send a whole request: line, headers and body
REQUEST_READ = "creditflow.request_read"  # in environ: called once the body is read, which ends the request's deadline
QUIET_PATHS = frozenset({"/api/v1/health"})  # polled by monitors: logged only at DEBUG

# A header sent twice reaches the app as both values joined with commas, as gunicorn (Cloud Functions' server)
# joins them, rather than as the last one alone (cheroot's way but for the names in this list): two Idempotency-Keys
# are then refused, not one of them taken, which a retry sending the other would not find.
if b"Idempotency-Key" not in comma_separated_headers:
    comma_separated_headers.append(b"Idempotency-Key")


def http_server(host: str, port: int, app: WSGIApplication, max_body: int,
                request_seconds: float = REQUEST_SECONDS, access_log: logging.Logger | None = None,
                larger: dict[str, int] | None = None, turns: CpuTurns | None = None) -> Server:
    """`larger`: paths (and the paths below them) whose bodies may be longer than `max_body` (uploads, the
    realtime tree's writes), and how long. `turns`: the app runs in
    them, once the request is read (a slow client holds none)."""
    served = bodies_measured(slashes_decoded(in_turns(app, turns) if turns else app), max_body, larger or {})
    if access_log is not None:
        served = requests_logged(served, access_log)
    # SERVER_NAME is the address listened on (cheroot's default is the machine's name): the dev sign-in is offered
    # only when it is loopback
    return _Server((host, port), served, numthreads=THREADS, request_queue_size=ACCEPT_QUEUE, server_name=host,
                   shutdown_timeout=SHUTDOWN_SECONDS, request_seconds=request_seconds)


# control characters in a logged path, escaped as \xNN: one request, one line
CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7f)}


def requests_logged(app: WSGIApplication, log: logging.Logger) -> WSGIApplication:
    """One line per request once its response is closed: method, path (never the query, which may carry a token),
    status, milliseconds from the app's start to the response's end (a stream's whole life) and the caller's uid,
    as the app noted it in environ[CALLER] ("-" for none). QUIET_PATHS go at DEBUG."""

    def logged(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not log.isEnabledFor(level):
            return app(environ, start_response)
        status = ["-"]

        def noted(line: str, *rest: Any) -> Any:
            status[0] = line[:3]
            return start_response(line, *rest)

        def done() -> None:
            log.log(level, "%s %s %s %.1f ms %s", environ.get("REQUEST_METHOD", "-"),
                    path.translate(CONTROLS), status[0],  # a decoded %0a must not start a line of its own
                    (time.perf_counter() - started) * 1000, environ.get(CALLER, "-"))

        try:
            reply = app(environ, noted)
        except BaseException:
            status[0] = "500"
            done()
            raise
        return _Closed(reply, done)

    return logged


def in_turns(app: WSGIApplication, turns: CpuTurns) -> WSGIApplication:
    """The app run in a turn, from its call until its reply is closed, which the server does on the thread that
    called it, once the reply is sent. (Taking a turn again for each piece of a reply put the request back behind
    every other waiting: no gain on the gateway benchmark.)"""

    def turned(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        turns.take()
        try:
            return _Closed(app(environ, start_response), turns.give_back)
        except BaseException:
            turns.give_back()
            raise

    return turned


class _Closed:
    """A response that calls `done` once the server closes it (every WSGI server closes what it was given)."""

    def __init__(self, reply: Iterable[bytes], done: Any) -> None:
        self._reply = reply
        self._done = done

    def __iter__(self) -> Any:
        return iter(self._reply)

    def close(self) -> None:
        try:
            close = getattr(self._reply, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class _Deadlines:
    """Requests that must arrive whole by a deadline. cheroot gives a worker thread to a connection once its first
    bytes arrive, then waits up to its timeout for each further read, with no limit on the whole: a client that
    trickles a byte now and then held the thread for good, and 64 such held them all. A watchdog shuts the
    connections of requests past their deadline, which ends the worker's wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: dict[object, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self, request: object, connection: socket.socket) -> None:
        with self._lock:
            self._reading[request] = (time.monotonic() + self.seconds, connection)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="request-deadlines", daemon=True)
                self._watchdog.start()

    def done(self, request: object) -> None:
        with self._lock:
            self._reading.pop(request, None)

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [request for request, (deadline, _) in self._reading.items() if deadline <= now]
                connections = [self._reading.pop(request)[1] for request in late]
            for connection in connections:
                with suppress(OSError):  # already closed
                    connection.shutdown(socket.SHUT_RDWR)


class _Server(Server):
    def __init__(self, *args: Any, request_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = _Deadlines(request_seconds)
        self.max_request_header_size = MAX_HEADERS
        self.ConnectionClass = _Connection
        self.gateway = _Gateway

    def stop(self) -> None:
        self.deadlines.stop()
        super().stop()


class _Gateway(Gateway_10):
    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # cheroot annotates it None; it returns it
        environ = super().get_environ()
        environ[REQUEST_READ] = partial(self.req.server.deadlines.done, self.req)
        environ[CLIENT_GONE] = partial(peer_closed, self.req.conn.socket)
        return environ


def peer_closed(connection: socket.socket) -> bool:
    """Whether the client has closed its side of the connection (or reset it), without waiting or reading anything:
    the socket is readable and a peek finds its end. A client that sends more (the next request, pipelined) has
    not."""
    if connection.fileno() < 0:  # closed here already
        return True
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN | select.POLLHUP | select.POLLERR)
        if not poller.poll(0):
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:  # reset by the peer
        return True
    except ValueError:  # a socket that cannot peek (TLS): not known, so not gone; a failed write will tell
        return False


class _ProblemRequest(HTTPRequest):
    """A request whose refusals by cheroot itself (a malformed request line, headers past the limit, an HTTP version
    it does not speak), which never reach the app, are problem documents like the app's, not plain text."""

    def parse_request(self) -> None:
        """Read the request line and headers, within the request's deadline."""
        self.server.deadlines.start(self, self.conn.socket)
        super().parse_request()
        if not self.ready:
            self.server.deadlines.done(self)

    def respond(self) -> None:
        try:
            super().respond()
        finally:
            self.server.deadlines.done(self)

    def simple_response(self, status: Any, msg: Any = "") -> None:
        status = str(status)
        if status[:3] == "413":  # cheroot's body limit is unset (the app's applies): these are headers past MAX_HEADERS
            status = "431 Request Header Fields Too Large"
        if status[:3] in {"414", "431"} and self.response_protocol != "HTTP/1.1":  # HTTP/1.0 has neither status
            status = "400 Bad Request"
        self.close_connection = True  # what is left of the request is unread: the connection cannot go on
        reason = status[4:]
        detail = msg.decode("latin-1") if isinstance(msg, bytes) else str(msg or reason)
        body = json.dumps({"type": PROBLEM_BASE + reason.lower().replace(" ", "-"), "title": reason,
                           "status": int(status[:3]), "detail": detail}).encode()
        head = [f"{self.server.protocol} {status}", f"Content-Type: {PROBLEM}", f"Content-Length: {len(body)}",
                "Connection: close"]
        try:
            self.conn.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError as error:
            if error.args[0] not in errors.socket_errors_to_ignore:
                raise


class _Connection(HTTPConnection):
    RequestHandlerClass = _ProblemRequest


def slashes_decoded(app: WSGIApplication) -> WSGIApplication:
    """cheroot leaves %2F quoted in PATH_INFO (WSGI and other servers decode it): decode the path from the raw
    request target, so that /v1/models/meta-llama%2FLlama… names the model as the OpenAI SDKs mean it."""

    def decoded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("REQUEST_URI", "")
        if "%2f" in raw.lower():
            environ["PATH_INFO"] = unquote(urlsplit(raw).path, encoding="latin-1")
        return app(environ, start_response)

    return decoded


def bodies_measured(app: WSGIApplication, most: int, larger: dict[str, int] | None = None) -> WSGIApplication:
    """cheroot hands a chunked request body over as a stream without CONTENT_LENGTH, which Flask cuts at its limit
    (a body past it would read as truncated JSON). Read such a body here, up to one byte past `limit`, and give the
    app its length, so that an oversized body is refused with 413 whichever way it was sent.

    A body within the limit is read here too, whole, before the app runs: its request's deadline ends then (see
    _Deadlines), not while the app works, which for a call to a model can take a minute.

    cheroot closes the connection after a 413 without reading the rest of the body, and closing a socket with bytes
    unread resets the connection: a client still sending (Python's http.client, say, which reads no answer before
    its body is sent) got a broken pipe instead of the 413. So the rest of a refused body is read and dropped first,
    up to OVERSIZED_READ bytes and within the deadline; past either the connection is cut, as a defence."""

    def measured(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        limit = next((n for prefix, n in (larger or {}).items() if path == prefix or path.startswith(prefix + "/")),
                     most)
        stream = environ["wsgi.input"]
        chunked = not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked:
            body = _read(stream, limit + 1)
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # read whole: Werkzeug ignores a length beside "chunked"
        length = _length(environ)
        if length <= limit:  # else refused unread, with the rest still to come
            if not chunked:  # read here, so that the request's deadline covers it
                environ["wsgi.input"] = io.BytesIO(_read(stream, length))
            if (read := environ.get(REQUEST_READ)) is not None:
                read()
        statuses: list[str] = []

        def noted(status: str, *rest: Any) -> Any:
            statuses.append(status)
            return start_response(status, *rest)

        reply = app(environ, noted)
        if statuses and statuses[-1].startswith("413"):
            dropped = 0
            while dropped < OVERSIZED_READ and (piece := stream.read(min(READ_SIZE, OVERSIZED_READ - dropped))):
                dropped += len(piece)
        return reply

    return measured


def _read(stream: Any, most: int) -> bytes:
    """Up to `most` bytes of a body, a piece at a time, until it ends."""
    body = bytearray()
    while len(body) < most and (piece := stream.read(min(READ_SIZE, most - len(body)))):
        body += piece
    return bytes(body)


def _length(environ: WSGIEnvironment) -> int:
    """The body's declared length (cheroot has refused a malformed one already)."""
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
