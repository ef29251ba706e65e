"""`creditflow serve`: the whole platform on one machine, on the embedded SQLite store."""

from __future__ import annotations

import errno
import fcntl
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..adapters.cpu_turns import CpuTurns
from ..bootstrap import Platform, build, key_watch, outside_writes, sweep_media
from ..config import Settings, served_at

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("creditflow")
SWEEP_SECONDS = 15.0
CHECKPOINT_SECONDS = 60.0
TASK_SWEEP_SECONDS = 5.0  # task deadlines and the outbox
OUTSIDE_CHECK_SECONDS = 1.0  # how soon the tree's listeners see what a command (a CLI grant) wrote to it
KEY_CHECK_SECONDS = 2.0  # how soon a `keys rotate` on the running runtime's folder is taken up
LOCK_FILE = "runtime.lock"  # in the data folder: held (flock) by the runtime serving it, and holds its PID


def hold_folder(data_dir: Path) -> IO[str] | str:
    """Take the data folder for this process's life (the lock goes with the process, a kill -9 included): the open
    lock file, or, when another runtime holds it, that runtime's PID as it wrote it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        return holder
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def runtime_holding(data_dir: Path) -> int | None:
    """The PID of the runtime serving `data_dir`, if one is (read, not locked: a runtime starting meanwhile must not
    find its folder taken)."""
    try:
        pid = int((data_dir / LOCK_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no file, no PID (stopped cleanly), or no such process (killed)
        return None
    return pid


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
    from ..adapters.local.dev_tokens import cli_command, dev_token_command

    return (f"Creditflow local runtime on {url} (data in {data_dir.resolve()}, ledger key "
            f"{platform.key.public.vkey})\n"
            f"  a dev token:  TOKEN=$({dev_token_command(data_dir, 'alice')})\n"
            f"  balance:      curl -H \"Authorization: Bearer $TOKEN\" {url}/api/v1/credits/balance\n"
            f"  welcome:      curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f"-d '{{}}' {url}/api/v1/credits/welcome-bonus\n"
            f"  chat:         curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f"-H 'Idempotency-Key: hi-1' -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}' "
            f"{url}/api/v1/chat\n"
            f"  OpenAI SDKs:  base_url {url}/v1 with a key from POST {url}/api/v1/keys\n"
            f"  API:          {url}/api/v1/docs (reference)  {url}/api/v1/openapi.json    checkpoint: "
            f"{url}/api/v1/ledger/checkpoint\n"
            f"  the CLI:      {cli_command()} --help\n"
            "Requests are logged one line each (method, path, status, ms, caller; /api/v1/health only with "
            "CREDITFLOW_LOG_HEALTH=1). Stop with Ctrl-C.")


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_refused(host: str, port: int, error: OSError) -> str:
    """Why the address cannot be listened on, said as what to do (cheroot folds the socket's errors into one)."""
    try:
        socket.getaddrinfo(host, port)
    except OSError as unknown:
        return (f"--host {host} is not an address or a name this machine can look up ({unknown.strerror or unknown}): "
                "give one of its addresses, such as 127.0.0.1 (the default) or 0.0.0.0 (every one)")
    reason = error.strerror or str(error)
    if f"[Errno {errno.EADDRNOTAVAIL}]" in reason:
        return (f"{host} is not an address of this machine ({reason}): give one of its own, such as 127.0.0.1 (the "
                "default) or 0.0.0.0 (every one)")
    return (f"{host}:{port} is in use or cannot be listened on ({reason}): stop what holds it, or choose another port "
            "with --port (make run: CREDITFLOW_PORT=8081 make run)")


def serve(host: str, port: int, data_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "openai"):  # a line per provider call: noise, and CPU on the hot path
        logging.getLogger(chatty).setLevel(logging.WARNING)
    access_log = logging.getLogger("creditflow.requests")
    lock = hold_folder(data_dir)
    if isinstance(lock, str):
        print(f"{data_dir.resolve()} is served by another Creditflow runtime already (PID {lock}): two on one folder "
              "would run two sweepers and sequencers on one ledger. Stop that one, or give this one another "
              "folder with --data-dir (make run: CREDITFLOW_DATA_DIR=/some/dir).", file=sys.stderr)
        return 1
    try:
        return _serve(host, port, data_dir, access_log)
    finally:
        lock.truncate(0)  # stopped: no PID to name (a kill -9 leaves it, and the lock goes anyway)
        lock.close()


def _serve(host: str, port: int, data_dir: Path, access_log: logging.Logger) -> int:
    from .http.api import MAX_BODY
    from .http.app import create_app
    from .http.payment_routes import MAX_WEBHOOK_BODY, STRIPE_WEBHOOK
    from .http.realtime import MAX_WRITE
    from .http.upload_routes import MAX_UPLOAD_BODY, UPLOADS
    from .local_http import SHUTDOWN_SECONDS, http_server

    settings = Settings.from_env(runtime="local", data_dir=data_dir)
    if settings.log_health:
        access_log.setLevel(logging.DEBUG)
    if settings.auth_emulator_host:
        if not is_loopback(host):
            print(f"FIREBASE_AUTH_EMULATOR_HOST is set: tokens are not signature-checked in that mode, so the local "
                  f"runtime serves only on loopback, not on {host}; unset it or use --host 127.0.0.1", file=sys.stderr)
            return 2
        print(f"WARNING: FIREBASE_AUTH_EMULATOR_HOST={settings.auth_emulator_host} is set: ID tokens are not "
              "signature-checked (the Auth emulator's mode), so ANY token is accepted, admin claims included. "
              "Serving on loopback only.", file=sys.stderr, flush=True)
    served: list[WSGIApplication] = []  # the app, once the platform is built: it needs the address bound

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return served[0](environ, start_response)

    turns = CpuTurns(settings.cpu_turns) if settings.cpu_turns else None
    server = http_server(host, port, app, MAX_BODY, access_log=access_log,
                         larger={UPLOADS: MAX_UPLOAD_BODY, "/realtime": MAX_WRITE, STRIPE_WEBHOOK: MAX_WEBHOOK_BODY},
                         turns=turns)
    try:
        server.prepare()  # listens: nothing is answered before `serve` below
    except OSError as error:
        print(listen_refused(host, port, error), file=sys.stderr)
        return 1
    # the URLs that name this app (Checkout's return pages, SIWE's domain) at the port bound (--port 0: a free one)
    platform = build(Settings.from_env(runtime="local", data_dir=data_dir, **served_at(host, server.bind_addr[1])))
    served.append(create_app(platform))
    # what is built by now (modules, the catalog, the app) lives as long as the process: out of the collector's
    # way, so that its full collections, every few thousand requests, go over what requests made and not over all
    # of it (about 140,000 objects, some 60 ms a time)
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    every(SWEEP_SECONDS, platform.credits.sweep, stop, "sweeper")
    every(CHECKPOINT_SECONDS, platform.integrity.publish_checkpoint, stop, "checkpoints")
    outside = outside_writes(platform)
    if outside is not None:
        every(OUTSIDE_CHECK_SECONDS, outside, stop, "outside-writes")
    keys_changed = key_watch(platform)
    if keys_changed is not None:
        every(KEY_CHECK_SECONDS, keys_changed, stop, "key-watch")

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
    # this runtime holds the folder's lock: a job left running was its dead predecessor's, and runs again at once
    released = platform.queue.release_leases()  # type: ignore[attr-defined]
    if released:
        log.info("%d job(s) left running by a stopped runtime run again now", released)
    platform.queue.start()  # type: ignore[attr-defined]  # the local queue's workers (QUEUE_WORKERS)
    inline = ThreadPoolExecutor(max(1, platform.settings.inline_capacity), thread_name_prefix="inline-task")
    platform.tasks.run_inline = inline.submit  # quick tasks run beside the trigger that accepted them
    platform.tasks.recover()  # after a kill: tasks that were running inline are queued again, requested accepted
    start_triggers = getattr(platform.realtime, "start_triggers", None)
    if start_triggers is not None:
        start_triggers()  # tree write triggers (task requests): those pending since the last run first
    every(TASK_SWEEP_SECONDS, platform.tasks.expire_overdue, stop, "task-deadlines")
    every(TASK_SWEEP_SECONDS, platform.tasks.deliver_events, stop, "outbox")
    every(TASK_SWEEP_SECONDS, platform.mirror.deliver_events, stop, "ledger-outbox")  # credits.low, after a crash
    if platform.blobs is not None:  # blobs no image holds (a crash between store and settle), and old uploads
        every(platform.settings.media_sweep_seconds, lambda: sweep_media(platform), stop, "media-sweep")
    if platform.deposits.configured:  # crypto deposits: confirmed blocks not read yet
        every(platform.settings.crypto_scan_seconds, platform.deposits.scan, stop, "chain-scan")
    stop.wait()
    platform.queue.stop(SHUTDOWN_SECONDS)  # type: ignore[attr-defined]  # running jobs finish; queued ones stay
    inline.shutdown(wait=True, cancel_futures=False)
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
