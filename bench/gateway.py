"""Gateway benchmark: one OpenAI-compatible upstream on loopback, called (a) directly, (b) through Creditflow's
/v1/chat/completions with metering on (hold, call, settle, signed ledger entries), (c) through LiteLLM's proxy
(no database), each server one process. Prints requests/s, p50/p99 latency, server CPU per request and the
ratios. Not a test: the figures are printed beside their targets, never asserted.

LiteLLM is installed on first use into bench/.venv-litellm (git-ignored); --no-litellm skips it.
Run: make bench-gateway   (or: functions/venv/bin/python bench/gateway.py [--requests N] [--concurrency C])
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from tests.fake_openai import EventStreamHandler, QuietServer  # noqa: E402

LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM = "litellm[proxy]==1.108.7"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"  # priced in Creditflow's packaged catalog
TICKS = os.sysconf("SC_CLK_TCK")
MASTER_KEY = "sk-bench-" + os.urandom(16).hex()  # LiteLLM refuses to start without one
REPLY = "a short reply from the upstream"


# ---- the upstream: a minimal OpenAI-compatible server (HTTP/1.1 keep-alive), run in its own process ----

class Upstream(EventStreamHandler):
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        base = {"id": "chatcmpl-bench", "created": 1, "model": body["model"]}
        usage = {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}
        if not body.get("stream"):
            data = json.dumps({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": REPLY}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")  # and keep-alive, as real providers stream
        self.end_headers()
        chunk = {**base, "object": "chat.completion.chunk"}
        for n, word in enumerate(REPLY.split(" ")):
            piece = {"index": 0, "delta": {"content": word if n == 0 else " " + word}, "finish_reason": None}
            self._event({**chunk, "choices": [piece]})
        self._event({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**chunk, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


def serve_upstream(port_file: str) -> None:
    class Server(QuietServer):
        request_queue_size = 256  # 20 clients connecting at once

    server = Server(("127.0.0.1", 0), Upstream)
    Path(port_file).write_text(str(server.server_address[1]))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


# ---- processes and their CPU ----

def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        grew = bool(more)
        family |= more
    return sum(cpu.get(p, 0.0) for p in family)


def wait_for(port: int, path: str, deadline: float = 180.0, headers: dict[str, str] | None = None) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path, headers=headers or {})
            if connection.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the load ----

@dataclass
class Result:
    name: str
    requests: int
    failures: int
    seconds: float
    latencies: list[float]
    cpu: float  # server-side CPU seconds

    @property
    def rate(self) -> float:
        return (self.requests - self.failures) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(1, self.requests - self.failures) * 1000


def load(name: str, port: int, path: str, headers: dict[str, str], body: dict, total: int, concurrency: int,
         pid: int, stream: bool) -> Result:
    """`total` POSTs from `concurrency` threads, each on its own keep-alive connection."""
    data = json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **headers}
    counter = iter(range(total))
    lock = threading.Lock()
    latencies: list[float] = []
    failures = [0]

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=data, headers=sent)
                response = connection.getresponse()
                payload = response.read()
                ok = response.status == 200 and (b"[DONE]" in payload if stream else b"choices" in payload)
                if response.will_close:
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += not ok

    before, started = tree_cpu(pid), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Result(name, total, failures[0], seconds, latencies, tree_cpu(pid) - before)


# ---- the three targets ----

def start_upstream(folder: Path) -> tuple[subprocess.Popen, int]:
    port_file = folder / "upstream.port"
    process = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.05)
    raise RuntimeError("the upstream did not start")


def start_creditflow(folder: Path, upstream: int) -> tuple[object, int, dict[str, str]]:
    from tests.e2e.server import LocalServer

    server = LocalServer(folder / "creditflow", AI_PLATFORM_API_KEY="bench", RATE_LIMIT_PER_MINUTE="1000000000",
                         AI_PLATFORM_BASE_URL=f"http://127.0.0.1:{upstream}/v1")
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "bench", "amount": "100000"}, token=admin,
                headers={"Idempotency-Key": "bench-grant"})
    key = server.call("POST", "/api/v1/keys", {"name": "bench"}, token=server.token("bench")).json["key"]
    return server, int(server.url.rsplit(":", 1)[1]), {"Authorization": f"Bearer {key}"}


def install_litellm() -> Path | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"installing {LITELLM} into {LITELLM_VENV.relative_to(ROOT)} (once) …", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM], check=True)
    except subprocess.CalledProcessError as error:
        print(f"  LiteLLM could not be installed ({error}); its column is left out")
        return None
    return binary


def start_litellm(folder: Path, upstream: int) -> tuple[subprocess.Popen, int] | None:
    binary = install_litellm()
    if binary is None:
        return None
    config = folder / "litellm.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{upstream}/v1", "api_key": "bench"}}],
        "litellm_settings": {"telemetry": False, "set_verbose": False, "drop_params": True}}))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "TELEMETRY": "False",
           "DISABLE_SCHEMA_UPDATE": "True", "LITELLM_MASTER_KEY": MASTER_KEY,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "*"}  # it looks for tokenizers online
    env.pop("DATABASE_URL", None)
    log = (folder / "litellm.log").open("w")
    process = subprocess.Popen([str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                "--num_workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(port, "/health/liveliness")
    except RuntimeError:
        stop(process)
        print(f"  LiteLLM did not start; see {folder / 'litellm.log'}:\n{(folder / 'litellm.log').read_text()[-2000:]}")
        return None
    return process, port


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM) if os.getpgid(process.pid) == process.pid else process.terminate()
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- the report ----

def adapter_cpu_ms(upstream: int, body: dict, streamed: bool = False, calls: int = 500) -> float:
    """CPU per call of the provider adapter alone (the official openai SDK, as the gateway calls it), serially
    in this process against the same upstream: a part of every metered request that no ledger work can cut."""
    from creditflow.adapters.ai.openai_compatible import OpenAICompatible

    adapter = OpenAICompatible("bench", f"http://127.0.0.1:{upstream}/v1", "bench")

    def call() -> None:
        if streamed:
            for _ in adapter.stream(body["model"], body["messages"], body["max_tokens"]):
                pass
        else:
            adapter.complete(body["model"], body["messages"], body["max_tokens"])

    for _ in range(50):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1000


def report(title: str, results: list[Result], sdk_ms: float, most: float) -> None:
    print(f"\n{title}")
    print(f"  {'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/req':>19}{'failed':>8}")
    for r in results:
        print(f"  {r.name:<34}{r.rate:>9.0f}{r.percentile(0.5):>9.1f}{r.percentile(0.99):>9.1f}"
              f"{r.cpu_ms:>19.2f}{r.failures:>8}")
    by = {r.name.split(" ")[0]: r for r in results}
    ours, lite = by.get("creditflow"), by.get("litellm")
    if ours and lite:
        print(f"  throughput creditflow / litellm: {ours.rate / lite.rate:.2f}x  (target ≥ 5x)")
    if ours:
        print(f"  creditflow CPU per metered request: {ours.cpu_ms:.2f} ms = {ours.cpu_ms / sdk_ms:.1f}x the openai "
              f"SDK's own call, {sdk_ms:.2f} ms measured serially in this run  (target ≤ {most:g}x)")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--serve-upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "benchmark me"}]}
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with tempfile.TemporaryDirectory(prefix="creditflow-bench-") as scratch:
        folder = Path(scratch)
        upstream, upstream_port = start_upstream(folder)
        started: list[Callable[[], None]] = [lambda: stop(upstream)]
        try:
            creditflow, creditflow_port, auth = start_creditflow(folder, upstream_port)
            started.append(creditflow.stop)  # type: ignore[attr-defined]
            targets = [("direct (upstream alone)", upstream_port, "/v1/chat/completions", {}, upstream.pid),
                       ("creditflow (metered, signed)", creditflow_port, "/v1/chat/completions", auth,
                        creditflow.process.pid)]  # type: ignore[attr-defined]
            if not args.no_litellm:
                lite = start_litellm(folder, upstream_port)
                if lite is not None:
                    started.append(lambda: stop(lite[0]))
                    targets.append(("litellm (proxy, no database)", lite[1], "/v1/chat/completions",
                                    {"Authorization": f"Bearer {MASTER_KEY}"}, lite[0].pid))
            print(f"{args.requests} non-streaming requests, then {args.stream_requests} streaming, concurrency "
                  f"{args.concurrency}; one server process each; all on 127.0.0.1")
            for name, port, path, headers, _ in targets:  # warm every path up first
                load(name, port, path, headers, body, 50, 5, os.getpid(), False)
            plain = [load(name, port, path, headers, body, args.requests, args.concurrency, pid, False)
                     for name, port, path, headers, pid in targets]
            report("non-streaming", plain, adapter_cpu_ms(upstream_port, body), 2.5)
            flowing = [load(name, port, path, headers, streamed, args.stream_requests, args.concurrency, pid, True)
                       for name, port, path, headers, pid in targets]
            report("streaming", flowing, adapter_cpu_ms(upstream_port, body, streamed=True), 3.5)
        finally:
            for halt in reversed(started):
                halt()


if __name__ == "__main__":
    main()
