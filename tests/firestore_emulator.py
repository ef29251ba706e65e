"""Google's Firestore emulator (the Cloud SDK's jar, Debian package google-cloud-cli-firestore-emulator), started on
a free loopback port. The tests share one instance per session; each test takes a project of its own, so tests see
nothing of each other's data. bench/firestore.py starts one the same way."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PACKAGE = "google-cloud-cli-firestore-emulator"
MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def find_jar() -> tuple[Path | None, str]:
    """The emulator's jar, or None and why it cannot run here."""
    if not shutil.which("java"):
        return None, "no java on PATH: Google's Firestore emulator is a Java program"
    if not shutil.which("dpkg"):
        return None, f"no dpkg: the Firestore emulator comes from the Debian package {PACKAGE}"
    listed = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
    jars = [Path(line) for line in listed.stdout.splitlines() if line.endswith("emulator.jar")]
    if listed.returncode != 0 or not jars or not jars[0].is_file():
        return None, (f"the Debian package {PACKAGE} (Google's Firestore emulator) is not installed, and its apt "
                      "source is not reachable from here")
    return jars[0], ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FirestoreEmulator:
    """One running emulator. `client()` gives a google-cloud-firestore client on a fresh, empty project."""

    def __init__(self, jar: Path, port: int | None = None, timeout: float = 60.0) -> None:
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        # its output goes to a file: it logs on (lock timeouts, …), and a pipe nobody reads would fill or break
        handle, name = tempfile.mkstemp(prefix="firestore-emulator-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(handle, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                ["java", "-Duser.language=en", "-cp", str(jar), MAIN, "start", "--host=127.0.0.1",
                 f"--port={self.port}"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while b"Dev App Server is now running" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Firestore emulator did not start:\n" + self.output())
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @staticmethod
    def project() -> str:
        return f"demo-creditflow-{uuid.uuid4().hex[:12]}"

    def client(self, project: str | None = None) -> Any:
        """A client as the server holds one (the emulator lets it past the rules, as Google's Admin SDK is)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host  # the client reads it when it is made
        try:
            return firestore.Client(project=project or self.project(), credentials=AnonymousCredentials())
        finally:
            if saved is None:
                del os.environ["FIRESTORE_EMULATOR_HOST"]
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = saved

    def request(self, method: str, path: str, body: object = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """A REST call to the emulator; the status and the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        call = urllib.request.Request(f"http://{self.host}{path}", data=data, method=method,
                                      headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(call, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def load_rules(self, project: str, rules: str) -> None:
        status, answer = self.request("PUT", f"/emulator/v1/projects/{project}:securityRules",
                                      {"rules": {"files": [{"name": "firestore.rules", "content": rules}]}})
        if status != 200:
            raise RuntimeError(f"the emulator refused the rules ({status}): {answer}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):  # then it is killed below
                urllib.request.urlopen(urllib.request.Request(f"http://{self.host}/shutdown", data=b"",
                                                              method="POST"), timeout=10).read()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)
