"""Google's Firestore emulator (the jar of the google-cloud-cli-firestore-emulator package) on a free loopback port,
for a test module's own fixture: `with firestore_emulator() as host:` sets nothing globally; pass `host` on."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

JAR = Path(os.environ.get("FIRESTORE_EMULATOR_JAR",
                          "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"))
READY = "Dev App Server is now running."


def missing() -> str | None:
    """Why the emulator cannot run here, or None."""
    if not JAR.is_file():
        return f"Google's Firestore emulator is not installed ({JAR} is missing: apt-get install " \
               f"google-cloud-cli-firestore-emulator)"
    if shutil.which("java") is None:
        return "Google's Firestore emulator needs java, which is not on PATH"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def firestore_emulator(timeout: float = 60.0) -> Iterator[str]:
    """Start the emulator, yield its host:port once it is ready, and shut it down (then end the process)."""
    port = free_port()
    process = subprocess.Popen(
        ["java", "-Duser.language=en", "-cp", str(JAR), "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
         "start", "--host=127.0.0.1", f"--port={port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()

    def watch() -> None:  # reads the output to its end, so the emulator never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            if READY in line:
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not ready.wait(timeout):
            raise RuntimeError(f"the Firestore emulator did not start within {timeout} s")
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/shutdown", data=b"",
                                                          method="POST"), timeout=10).close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)
