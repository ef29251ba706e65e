"""An OpenAI-compatible images server the tests start on loopback (`POST /v1/images/generations`), answering with
real PNG or JPEG bytes drawn by Pillow, as base64 (`b64_json`, the default) or as a URL it then serves
(`response_format: "url"`). The prompt steers it: FAIL500 and RATE429 fail those ways, SLOW answers after 3 s,
UNSAFE is refused with 400 as OpenAI refuses content its safety system flags, NOTIMAGE sends bytes that are not an
image, JPEG draws JPEGs, NOTHING answers with no images, FEWER with one image whatever n asks for, BIGFILE serves a
URL of 21 MB and SLOWFILE a URL that stalls for 3 s before its body, FLAKY fails with 503 the first two times a
prompt is asked and answers the third, and a prompt with "DELAY=<ms>" answers after that many milliseconds. Every
request body is kept in `requests`."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from PIL import Image

from tests.fake_openai import QuietServer, send_json, start_serving, stop_serving


def drawn(width: int, height: int, format: str = "PNG", shade: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), (shade % 256, 128, 255 - shade % 256))
    out = io.BytesIO()
    image.save(out, format=format)
    return out.getvalue()


class FakeImages:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, tuple[bytes, str, str]] = {}  # id → (bytes, content type, behaviour)
        self.connections: list[socket.socket] = []
        self.asked: dict[str, int] = {}  # prompt → how many times it was asked
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                outer.connections.append(self.connection)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if not self.path.endswith("/images/generations"):
                    return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                prompt = str(body.get("prompt", ""))
                outer.asked[prompt] = outer.asked.get(prompt, 0) + 1
                if "FLAKY" in prompt and outer.asked[prompt] <= 2:
                    return self._json(503, {"error": {"message": "overloaded", "type": "server_error"}})
                delay = re.search(r"DELAY=([0-9]{1,5})", prompt)
                if delay:
                    time.sleep(int(delay[1]) / 1000)
                if "FAIL500" in prompt:
                    return self._json(500, {"error": {"message": "the server had an error", "type": "server_error"}})
                if "RATE429" in prompt:
                    return self._json(429, {"error": {"message": "rate limit reached", "type": "rate_limit"}})
                if "UNSAFE" in prompt:
                    return self._json(400, {"error": {
                        "message": "Your request was rejected as a result of our safety system.",
                        "type": "invalid_request_error", "param": "prompt", "code": "content_policy_violation"}})
                if "SLOW" in prompt and "SLOWFILE" not in prompt:
                    time.sleep(3)
                width, height = (int(side) for side in str(body.get("size", "256x256")).split("x"))
                n = 0 if "NOTHING" in prompt else 1 if "FEWER" in prompt else int(body.get("n") or 1)
                format = "JPEG" if "JPEG" in prompt else "PNG"
                images = [b"<html>an error page, not an image</html>" if "NOTIMAGE" in prompt
                          else drawn(width, height, format, shade=40 * i) for i in range(n)]
                if body.get("response_format") == "url":
                    data = []
                    for image in images:
                        key = uuid.uuid4().hex
                        behaviour = "big" if "BIGFILE" in prompt else "slow" if "SLOWFILE" in prompt else ""
                        outer.files[key] = (image, f"image/{format.lower()}", behaviour)
                        data.append({"url": f"{outer.base}/files/{key}"})
                else:
                    data = [{"b64_json": base64.b64encode(image).decode()} for image in images]
                extra = {"seed": body["seed"]} if isinstance(body.get("seed"), int) and n == 1 else {}
                return self._json(200, {"created": int(time.time()), "data": [{**item, **extra} for item in data]})

            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/files/") or key not in outer.files:
                    return self._json(404, {"error": {"message": "no such file"}})
                data, content_type, behaviour = outer.files[key]
                if behaviour == "big":  # streamed without a length, as a proxy might
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"\0" * 1024 * 1024
                    with contextlib.suppress(OSError):
                        for _ in range(21):
                            self.wfile.write(chunk)
                    self.close_connection = True
                    return None
                if behaviour == "slow":
                    time.sleep(3)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data)
                return None

            def _json(self, status: int, payload: object) -> None:
                send_json(self, status, payload)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/v1"
        self.thread = start_serving(self.server)

    def stop(self) -> None:
        stop_serving(self.server, self.connections)
