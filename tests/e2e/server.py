"""Start the local runtime as a user would (python -m creditflow serve) and talk to it over real HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


class LocalServer:
    def __init__(self, data: Path, **env: str) -> None:
        self.data = data
        self.log = data.parent / f"{data.name}-server.log"  # a file, not a pipe nobody drains
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "creditflow", "serve", "--port", "0", "--data-dir", str(data)],
                cwd=FUNCTIONS, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
        deadline = time.monotonic() + 60
        match = None
        while match is None and time.monotonic() < deadline and self.process.poll() is None:
            match = re.search(r"on (http://[\d.]+:\d+)", self.log.read_text())
            time.sleep(0.05)
        # it may have started and ended between two looks (a crash test's runtime kills itself on resuming a
        # task): started is what the banner says; the caller sees the exit
        match = match or re.search(r"on (http://[\d.]+:\d+)", self.log.read_text())
        if match is None:
            self.process.kill()
            raise RuntimeError(f"the local runtime did not start: {self.log.read_text()}")
        self.url = match.group(1)
        self._tokens = None

    def token(self, uid: str, **claims: Any) -> str:
        if self._tokens is None:
            from creditflow.adapters.local.dev_tokens import DevTokens
            from creditflow.bootstrap import dev_token_key, load_keys
            from creditflow.config import Settings

            settings = Settings.from_env(runtime="local", data_dir=self.data)
            key, _ = load_keys(settings)
            self._tokens = DevTokens(dev_token_key(settings, key))
        return self._tokens.issue(uid, **claims)

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def stop(self) -> int:
        """SIGTERM, as an operator would; a server still busy after a minute is killed (and says so)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            return -9
