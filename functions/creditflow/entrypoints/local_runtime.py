"""`creditflow serve`: the whole platform on one machine, on the embedded SQLite store."""

from __future__ import annotations

import io
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..bootstrap import Platform, build
from ..config import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("creditflow")
SWEEP_SECONDS = 15.0
CHECKPOINT_SECONDS = 60.0
THREADS = 64  # cheroot's workers: one per request or open event stream (idle keep-alive connections hold none)
ACCEPT_QUEUE = 256  # the listen backlog: 20 clients connecting at once overflow the default of 5 (connection resets)
SHUTDOWN_SECONDS = 30.0
OVERSIZED_READ = 16 * 1024 * 1024  # the most of a refused (413) body read before the connection closes
READ_SIZE = 64 * 1024


def every(seconds: float, job: Callable[[], object], stop: threading.Event, name: str) -> threading.Thread:
    """Run `job` every `seconds` until `stop` is set; a failing run is logged and the timer goes on."""

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                job()
            except Exception:  # a timer must outlive one bad run
                log.exception("%s failed", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def slashes_decoded(app: WSGIApplication) -> WSGIApplication:
    """cheroot leaves %2F quoted in PATH_INFO (WSGI and other servers decode it): decode the path from the raw
    request target, so that /v1/models/meta-llama%2FLlama… names the model as the OpenAI SDKs mean it."""

    def decoded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("REQUEST_URI", "")
        if "%2f" in raw.lower():
            environ["PATH_INFO"] = unquote(urlsplit(raw).path, encoding="latin-1")
        return app(environ, start_response)

    return decoded


def bodies_measured(app: WSGIApplication, limit: int) -> WSGIApplication:
    """cheroot hands a chunked request body over as a stream without CONTENT_LENGTH, which Flask cuts at its limit
    (a body past it would read as truncated JSON). Read such a body here, up to one byte past `limit`, and give the
    app its length, so that an oversized body is refused with 413 whichever way it was sent.

    cheroot closes the connection after a 413 without reading the rest of the body, and closing a socket with bytes
    unread resets the connection: a client still sending (Python's http.client, say, which reads no answer before
    its body is sent) got a broken pipe instead of the 413. So the rest of a refused body is read and dropped first,
    up to OVERSIZED_READ bytes; past that the connection is cut, as a defence."""

    def measured(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        if not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = bytearray()
            while len(body) <= limit and (piece := stream.read(limit + 1 - len(body))):  # a chunk at a time
                body += piece
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # read whole: Werkzeug ignores a length beside "chunked"
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


def banner(platform: Platform, url: str, data_dir: Path) -> str:
    return (f"Creditflow local runtime on {url} (data in {data_dir}, ledger key {platform.key.public.vkey})\n"
            f"  a dev token:  TOKEN=$(cd functions && venv/bin/python -m creditflow dev-token alice "
            f"--data-dir {data_dir})\n"
            f"  balance:      curl -H \"Authorization: Bearer $TOKEN\" {url}/api/v1/credits/balance\n"
            f"  welcome:      curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f"-d '{{}}' {url}/api/v1/credits/welcome-bonus\n"
            f"  chat:         curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f"-H 'Idempotency-Key: hi-1' -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}' "
            f"{url}/api/v1/chat\n"
            f"  OpenAI SDKs:  base_url {url}/v1 with a key from POST {url}/api/v1/keys\n"
            f"  API:          {url}/api/v1/openapi.json    checkpoint: {url}/api/v1/ledger/checkpoint\n"
            "Stop with Ctrl-C.")


def serve(host: str, port: int, data_dir: Path) -> int:
    from cheroot.wsgi import Server

    from .http.api import MAX_BODY
    from .http.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "openai"):  # a line per provider call: noise, and CPU on the hot path
        logging.getLogger(chatty).setLevel(logging.WARNING)
    platform = build(Settings.from_env(runtime="local", data_dir=data_dir))
    # every open event stream holds a thread: leave plenty for requests; a deep accept queue for bursts of clients
    app = bodies_measured(slashes_decoded(create_app(platform)), MAX_BODY)
    server = Server((host, port), app, numthreads=THREADS,
                    request_queue_size=ACCEPT_QUEUE, shutdown_timeout=SHUTDOWN_SECONDS)
    try:
        server.prepare()
    except OSError as error:
        print(f"{host}:{port} is in use or cannot be listened on ({error.strerror or error}): stop what holds it, "
              "or choose another port with --port (make run: CREDITFLOW_PORT=8081 make run)", file=sys.stderr)
        return 1
    stop = threading.Event()
    every(SWEEP_SECONDS, platform.credits.sweep, stop, "sweeper")
    every(CHECKPOINT_SECONDS, platform.integrity.publish_checkpoint, stop, "checkpoints")

    def shutdown(signum: int, _: object) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    serving = threading.Thread(target=server.serve, name="http", daemon=True)
    serving.start()
    bound_host, bound_port = server.bind_addr[:2]
    print(banner(platform, f"http://{bound_host}:{bound_port}", data_dir), flush=True)
    platform.mirror.run_in_background(catch_up=True)  # balance writes leave the request threads; after a kill the
    # mirror may trail the ledger: its writer first rewrites it from the ledger, while the server already answers
    stop.wait()
    feed = getattr(platform.realtime, "feed", None)
    if feed is not None:
        feed.close()  # event streams end instead of holding their threads
    server.stop()  # no new connections; requests in flight finish (up to SHUTDOWN_SECONDS)
    serving.join(timeout=SHUTDOWN_SECONDS)
    platform.mirror.flush()
    platform.mirror.stop()
    platform.integrity.publish_checkpoint()  # leave a signed head over everything written
    return 0
