"""What the suites that run firebase-tools' emulators share: where the CLI is, free loopback ports for them, and the
functions emulator's Python workers it leaves behind."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIREBASE = ROOT / "tools" / "node_modules" / ".bin" / "firebase"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on now (the repository's firebase.json names fixed ones, which
    another checkout's run may hold)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def framework_workers() -> set[int]:
    """The functions emulator's Python workers running this checkout's functions (other checkouts' runs on the
    machine are left alone)."""
    found = subprocess.run(["pgrep", "-f", "functions-framework"], capture_output=True, text=True).stdout
    mine = set()
    for pid in (int(p) for p in found.split()):
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == ROOT / "functions":
                mine.add(pid)
        except OSError:  # gone already
            continue
    return mine
