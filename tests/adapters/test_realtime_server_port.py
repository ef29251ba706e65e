"""/realtime is served from a port: the local tree implements it, Realtime Database's adapter does not (clients talk
to Realtime Database itself), and the HTTP layer imports no adapter."""

from __future__ import annotations

import ast
from pathlib import Path

from creditflow.adapters.firebase.rtdb import RealtimeDatabase
from creditflow.adapters.local.tree import LocalTree
from creditflow.ports import RealtimeServer

HTTP = Path(__file__).parents[2] / "functions/creditflow/entrypoints/http"


def test_the_local_tree_is_a_realtime_server_and_firebases_is_not(tmp_path: Path) -> None:
    assert isinstance(LocalTree(tmp_path / "tree.sqlite3"), RealtimeServer)
    assert not all(hasattr(RealtimeDatabase, name) for name in ("read", "put", "patch", "push"))


def test_the_http_layer_imports_no_adapter() -> None:
    imported = {node.module or "" for path in HTTP.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if "adapters" in name]
