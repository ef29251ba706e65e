"""The local runtime's LangGraph checkpointer: langgraph-checkpoint-sqlite's SqliteSaver on a file of its own in
the data folder (threads are agent tasks), in WAL mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from .sqlite_connections import enter_wal

FILE = "agents.sqlite3"


def sqlite_checkpointer(data_dir: Path, synchronous: str = "NORMAL") -> SqliteSaver:
    """A saver on `data_dir/agents.sqlite3`. With WAL, synchronous NORMAL keeps every committed superstep through
    a killed process (a power cut may lose the last ones, which a redelivery then runs again: model calls are
    keyed, so not paid twice); FULL syncs each one to disk."""
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"unknown synchronous mode {synchronous!r}")
    data_dir.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(data_dir / FILE, check_same_thread=False)  # SqliteSaver serialises on a lock
    enter_wal(connection, timeout=30.0)
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    saver = SqliteSaver(connection)
    saver.setup()
    return saver
