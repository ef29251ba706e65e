"""What the suites that run firebase-tools' emulators share: where the CLI is, free loopback ports for them, and the
functions emulator's Python workers it leaves behind."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def emulators_config(*emulators: str, functions: bool = False) -> Iterator[tuple[Path, dict[str, int]]]:
    """A firebase-tools config naming free loopback ports for `emulators` and for the hub, logging and eventarc
    beside them (firebase.json's fixed ones, 5001 and 9099 among them, may be held by another checkout's run), with
    firebase.json's functions when asked; and the ports, by emulator. It sits beside firebase.json, since
    firebase-tools takes the project folder from where its config is, and goes at the end."""
    names = (*emulators, "hub", "logging", "eventarc")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    config = ROOT / f".firebase-e2e-{ports[emulators[0]]}.json"
    settings = {"singleProjectMode": True, "ui": {"enabled": False},
                **{name: {"host": "127.0.0.1", "port": port} for name, port in ports.items()}}
    config.write_text(json.dumps({"emulators": settings, **(
        {"functions": json.loads((ROOT / "firebase.json").read_text())["functions"]} if functions else {})}))
    try:
        yield config, ports
    finally:
        config.unlink(missing_ok=True)


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
