"""An OpenAI-compatible HTTP server the tests start on loopback. The last user message steers it:
FAIL500, RATE429 and BROKEN make it fail those ways (FAILLLAMA fails only Llama models), NOUSAGE leaves
usage out, BREAKSTREAM cuts a stream after two pieces; anything else is answered with 100 prompt tokens
and 50 completion tokens (streams send the reply word by word, then a usage chunk when
stream_options.include_usage asks for it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                last = body["messages"][-1]["content"]
                if "FAIL500" in last or ("FAILLLAMA" in last and "Llama" in body["model"]):
                    return self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                if "RATE429" in last:
                    return self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}})
                if "BROKEN" in last:
                    return self._send(200, None, raw=b"{not json")
                if body.get("stream"):
                    return self._stream(body, last)
                reply: dict[str, Any] = {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"echo: {last}"}}]}
                if "NOUSAGE" not in last:
                    reply["usage"] = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
                return self._send(200, reply)

            def _stream(self, body: dict[str, Any], last: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
                words = f"echo: {last}".split(" ")
                for n, word in enumerate(words):
                    if "BREAKSTREAM" in last and n == 2:
                        self.wfile.write(b"data: {\"id\": \"chatcmpl-2\", \"choi")  # cut mid-chunk
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                    delta = {"index": 0, "delta": {"content": word if n == 0 else " " + word}, "finish_reason": None}
                    self._event({**base, "choices": [delta]})
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage") and "NOUSAGE" not in last:
                    self._event({**base, "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 50,
                                                                   "total_tokens": 150}})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, payload: object) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

            def _send(self, status: int, payload: object, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
