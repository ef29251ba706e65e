"""`creditflow serve`: the whole platform on one machine, on the embedded SQLite store."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..bootstrap import Platform, build
from ..config import Settings

log = logging.getLogger("creditflow")
SWEEP_SECONDS = 15.0
CHECKPOINT_SECONDS = 60.0


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


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(host: str, port: int, data_dir: Path) -> int:
    from .http.api import MAX_BODY
    from .http.app import create_app
    from .local_http import SHUTDOWN_SECONDS, http_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "openai"):  # a line per provider call: noise, and CPU on the hot path
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = Settings.from_env(runtime="local", data_dir=data_dir)
    if settings.auth_emulator_host:
        if not is_loopback(host):
            print(f"FIREBASE_AUTH_EMULATOR_HOST is set: tokens are not signature-checked in that mode, so the local "
                  f"runtime serves only on loopback, not on {host}; unset it or use --host 127.0.0.1", file=sys.stderr)
            return 2
        print(f"WARNING: FIREBASE_AUTH_EMULATOR_HOST={settings.auth_emulator_host} is set: ID tokens are not "
              "signature-checked (the Auth emulator's mode), so ANY token is accepted, admin claims included. "
              "Serving on loopback only.", file=sys.stderr, flush=True)
    platform = build(settings)
    server = http_server(host, port, create_app(platform), MAX_BODY)
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
    start_triggers = getattr(platform.realtime, "start_triggers", None)
    if start_triggers is not None:
        start_triggers()  # tree write triggers: those pending since the last run first
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
    stop_triggers = getattr(platform.realtime, "stop_triggers", None)
    if stop_triggers is not None:
        stop_triggers()  # what is still pending is delivered at the next start
    platform.integrity.publish_checkpoint()  # leave a signed head over everything written
    return 0
