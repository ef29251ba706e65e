"""An OpenAI-compatible HTTP server the tests start on loopback. The last user message steers it: FAIL500, RATE429 and
BROKEN make it fail those ways (FAILLLAMA fails only Llama models), NOUSAGE leaves usage out (NEGUSAGE and NEGOUT
report a negative prompt or completion count), BREAKSTREAM cuts a stream after two pieces (mid-chunk), CUTATEND
after its usage chunk (before [DONE]), ERREVENT sends an error event after two, SLOWLLAMA makes Llama models wait 3 s
(HELDLLAMA: until `let_go` is set, 30 s at most), DRIP streams a word every 0.3 s, PACE20 one every 20 ms (a model's
pace), STALL stalls a stream for 2 s after two pieces. UNSAFE anywhere in the messages or inputs is refused with 400,
as OpenAI refuses content its safety system flags, and so are a `temperature` that is not a number and a
`response_format` of a type it does not know. Anything else is answered with 100 prompt tokens and 50 completion
tokens (streams send the reply word by word, then a usage chunk when stream_options.include_usage asks for it). With
`tools` in the request and a user message last, it calls the first tool with {"q": <message>}; after a tool result it
answers "tool said: <result>". TOOLPLAN:[["name", {args}], ...] in a user message (with `tools` sent) scripts a tool-
calling conversation: while fewer tool results than planned calls are in the request it calls the next planned tool
(ids call_1, call_2, ...), then answers "done: <result> | <result> | ..." (plain replies only). The task classifier's
schema is answered quick in 3 s (LONGJOB: long, 42 s), and where it asks for an agent, the first offered (CODEAGENT:
code). /v1/embeddings gives 8-dimensional vectors of hashed words and counts one prompt token per word."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def vector(text: str) -> list[float]:
    out = [0.0] * 8
    for word in text.lower().split():
        out[hashlib.sha256(word.encode()).digest()[0] % 8] += 1.0
    return out


def tool_plan(body: dict[str, Any]) -> list[list[Any]] | None:
    """The TOOLPLAN a user message of the request carries, when the request offers tools."""
    if not body.get("tools"):
        return None
    for message in body["messages"]:
        content = message.get("content")
        if message["role"] == "user" and isinstance(content, str) and "TOOLPLAN:" in content:
            plan, _ = json.JSONDecoder().raw_decode(content.split("TOOLPLAN:", 1)[1].lstrip())
            return plan
    return None


def planned_reply(body: dict[str, Any], plan: list[list[Any]]) -> dict[str, Any]:
    """The next planned tool call, or the final answer once every planned call has its result."""
    results = [str(m.get("content")) for m in body["messages"] if m["role"] == "tool"]
    if len(results) < len(plan):
        name, arguments = plan[len(results)]
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{len(results) + 1}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments)}}]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "done: " + " | ".join(results)}, "stop"
    return {"id": "chatcmpl-3", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: object, raw: bytes | None = None) -> None:
    """A whole JSON answer (or `raw` bytes claiming to be one), with its length."""
    data = raw if raw is not None else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


POLL_SECONDS = 0.01  # how often a serving loop checks for shutdown: at the default 0.5 s, a stop waited about
# 0.25 s, and tests that start a fake server each (hundreds do) spent minutes of `make test` in it


def start_serving(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve on a daemon thread, which `stop_serving` ends within POLL_SECONDS."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()
    return thread


def stop_serving(server: ThreadingHTTPServer, connections: list[socket.socket]) -> None:
    """Shut the server down and cut the connections it kept alive."""
    server.shutdown()
    server.server_close()
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # connections cut by a client or by stop()
            super().handle_error(request, client_address)


class EventStreamHandler(BaseHTTPRequestHandler):
    """Kept-alive HTTP/1.1; a stream answers in chunked encoding, a server-sent event a chunk, as providers do."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _event(self, payload: object) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failing = False  # set to make every request fail with 503 until it is cleared
        self.let_go = threading.Event()  # what HELDLLAMA calls wait for
        self.connections: list[socket.socket] = []  # kept alive: stop() cuts them too
        outer = self

        class Handler(EventStreamHandler):
            def setup(self) -> None:
                super().setup()
                outer.connections.append(self.connection)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.path.endswith(("/chat/completions", "/embeddings")):  # as a provider that has no images
                    return self._send(404, {"error": {"message": f"no route {self.path}", "param": None,
                                                      "type": "invalid_request_error", "code": "not_found"}})
                outer.requests.append(body)
                if outer.failing:  # the whole provider down, whatever the request
                    return self._send(503, {"error": {"message": "provider down", "type": "server_error"}})
                if "UNSAFE" in json.dumps(body.get("messages", body.get("input"))):
                    return self._send(400, {"error": {
                        "message": "Your request was rejected as a result of our safety system.",
                        "type": "invalid_request_error", "param": None, "code": "content_policy_violation"}})
                temperature = body.get("temperature", 0)
                if isinstance(temperature, bool) or not isinstance(temperature, int | float):
                    return self._send(400, {"error": {"message": "temperature: Input should be a valid number",
                                                      "type": "invalid_request_error", "param": "temperature",
                                                      "code": None}})
                if body.get("response_format", {}).get("type", "text") not in ("text", "json_object", "json_schema"):
                    return self._send(400, {"error": {"message": "response_format.type: Input should be 'text', "
                                                      "'json_object' or 'json_schema'",
                                                      "type": "invalid_request_error",
                                                      "param": "response_format.type", "code": None}})
                if self.path.endswith("/embeddings"):
                    return self._embeddings(body)
                final = body["messages"][-1]
                last = final["content"] if isinstance(final.get("content"), str) else json.dumps(final["content"])
                if final["role"] == "tool":
                    last = f"tool said: {last}"
                tool = body["tools"][0]["function"]["name"] if body.get("tools") and final["role"] == "user" else None
                plan = tool_plan(body)
                if plan is not None and not body.get("stream"):
                    return self._send(200, planned_reply(body, plan))
                if "FAIL500" in last or ("FAILLLAMA" in last and "Llama" in body["model"]):
                    return self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                if "SLOWLLAMA" in last and "Llama" in body["model"]:
                    time.sleep(3)
                if "HELDLLAMA" in last and "Llama" in body["model"]:
                    outer.let_go.wait(30)
                if "PAUSE" in last:  # a reply that takes a moment: long enough for a client to race it
                    time.sleep(0.02)
                if "RATE429" in last:
                    return self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}})
                if "BROKEN" in last:
                    return self._send(200, None, raw=b"{not json")
                schema = (body.get("response_format") or {}).get("json_schema", {})
                if schema.get("name") == "task_class":  # a model that answers the task classifier's schema
                    verdict: dict[str, object] = {"speed": "long", "seconds": 42} if "LONGJOB" in last else {
                        "speed": "quick", "seconds": 3}
                    agents = schema["schema"]["properties"].get("agent", {}).get("enum")
                    if agents:  # CODEAGENT in the task's text: code; else the first choice it was given
                        verdict["agent"] = "code" if "CODEAGENT" in last else agents[0]
                    return self._send(200, {"id": "chatcmpl-4", "object": "chat.completion", "created": 1,
                                            "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": json.dumps(verdict)}}],
                                            "usage": {"prompt_tokens": 60, "completion_tokens": 8,
                                                      "total_tokens": 68}})
                if body.get("stream"):
                    return self._stream(body, last, tool)
                message: dict[str, Any] = {"role": "assistant", "content": f"echo: {last}"}
                if tool:
                    message = {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": tool, "arguments": json.dumps({"q": last})}}]}
                reply: dict[str, Any] = {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "tool_calls" if tool else "stop", "message": message}]}
                if "NEGUSAGE" in last:  # a provider's nonsense
                    reply["usage"] = {"prompt_tokens": -1_000_000, "completion_tokens": 50, "total_tokens": 150}
                elif "NEGOUT" in last:  # the same, of the reply
                    reply["usage"] = {"prompt_tokens": 100, "completion_tokens": -50, "total_tokens": 50}
                elif "NOUSAGE" not in last:
                    reply["usage"] = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
                return self._send(200, reply)

            def _embeddings(self, body: dict[str, Any]) -> None:
                inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
                data = [{"object": "embedding", "index": n, "embedding": vector(text)} for n, text in enumerate(inputs)]
                words = sum(len(text.split()) for text in inputs)
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": words, "total_tokens": words}})

            def _stream(self, body: dict[str, Any], last: str, tool: str | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
                if tool:  # a tool call, its arguments in two pieces, as OpenAI streams them
                    arguments = json.dumps({"q": last})
                    self._event({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": tool, "arguments": arguments[:5]}}]}}]})
                    self._event({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                        {"index": 0, "function": {"arguments": arguments[5:]}}]}}]})
                    self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
                    return self._usage_and_done(body, last)
                if "EMPTYLLAMA" in last and "Llama" in body["model"]:  # a stream that ends without a word
                    return self._chunk(b"data: [DONE]\n\n") or self._chunk(b"")
                if "WAIT50" in last:  # a provider with a fixed first-token time (the bus benchmark's anchor)
                    time.sleep(0.05)
                words = f"echo: {last}".split(" ")
                for n, word in enumerate(words):
                    if "BREAKSTREAM" in last and n == 2:
                        self.wfile.write(b"40\r\ndata: {\"id\": \"chatcmpl-2\", \"choi")  # cut mid-chunk
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        self.close_connection = True
                        return
                    if "ERREVENT" in last and n == 2:  # an error event mid-stream, then the stream ends
                        self._event({"error": {"message": "overloaded", "type": "server_error"}})
                        return self._chunk(b"")
                    delta = {"index": 0, "delta": {"content": word if n == 0 else " " + word}, "finish_reason": None}
                    self._event({**base, "choices": [delta]})
                    if "PAUSE" in last:
                        time.sleep(0.005)
                    if "PACE20" in last:
                        time.sleep(0.02)
                    if "DRIP" in last or ("STALL" in last and n == 1):
                        time.sleep(0.3 if "DRIP" in last else 2)
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._usage_and_done(body, last)

            def _usage_and_done(self, body: dict[str, Any], last: str) -> None:
                base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
                if (body.get("stream_options") or {}).get("include_usage") and "NOUSAGE" not in last:
                    self._event({**base, "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 50,
                                                                   "total_tokens": 150}})
                if "CUTATEND" in last:  # all of it sent, usage too; the connection lost before [DONE]
                    self.wfile.write(b"e\r\ndata: [DO")
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    self.close_connection = True
                    return
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _send(self, status: int, payload: object, raw: bytes | None = None) -> None:
                send_json(self, status, payload, raw)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = start_serving(self.server)

    def stop(self) -> None:
        stop_serving(self.server, self.connections)
