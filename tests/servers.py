"""Servers the tests start as processes: wait until one answers, or say it did not start."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until_up(process: subprocess.Popen[bytes], answers: Callable[[], bool], what: str,
                  timeout: float = 30.0, pause: float = 0.02) -> None:
    """Poll `answers` (True once the server answers; OSError while it cannot be reached) until it does; a process
    that exits, or a timeout, stops it and raises, with the end of what it wrote to its stderr when that is a pipe."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if answers():
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not start{_last_words(process)}")
        time.sleep(pause)


def stop_process(process: subprocess.Popen[bytes], seconds: float = 5.0) -> None:
    """SIGTERM, and SIGKILL when it has not exited within `seconds`."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _last_words(process: subprocess.Popen[bytes]) -> str:
    """The end of what a stopped process wrote to its stderr, when that was piped to us."""
    if process.stderr is None:
        return ""
    try:
        _, said = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    return f": {said.decode(errors='replace')[-2000:]!r}" if said else ""
