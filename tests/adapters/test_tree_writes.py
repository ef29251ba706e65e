"""The local tree's writes against a plain model of Realtime Database's: a set replaces the subtree at its path (an
object on the way is created, a value on the way becomes an object), a null or an empty object deletes it (nothing
happens below a value: Firebase's LeafNode.updateChild keeps the value), and an object left empty vanishes. The
tree keeps subtrees in rows at the paths written, so sequences of writes above, at and below earlier ones reach
every way a write meets the rows there."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.adapters.local.tree import LocalTree

KEYS = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(KEYS, min_size=1, max_size=4)
LEAVES = st.integers(-3, 3) | st.text("xy", max_size=2) | st.booleans()
VALUES = st.none() | st.recursive(LEAVES, lambda inner: st.dictionaries(KEYS, inner | st.none(), max_size=3),
                                  max_leaves=6)


def pruned(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    kept = {key: pruned(child) for key, child in value.items()}
    return {key: child for key, child in kept.items() if child is not None} or None


def model_write(root: dict[str, Any], keys: list[str], value: Any) -> None:
    value = pruned(value)
    node = root
    if value is None:
        trail = []
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                return  # nothing there (or a value): nothing to delete
            trail.append((node, key))
            node = child
        node.pop(keys[-1], None)
        for parent, key in reversed(trail):  # objects left empty vanish
            if parent[key]:
                break
            del parent[key]
        return
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def model_read(root: dict[str, Any], keys: list[str]) -> Any:
    node: Any = root
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def disjoint(children: dict[str, Any]) -> bool:
    """No path of a multi-path update inside another (the database refuses such an update)."""
    return not any(a != b and b.startswith(a + "/") for a in children for b in children)


UPDATES = st.tuples(st.lists(KEYS, max_size=2), st.dictionaries(PATHS.map("/".join), VALUES, min_size=1,
                                                                max_size=3).filter(disjoint))


def set_each(tree: LocalTree, model: dict[str, Any], writes: list[tuple[list[str], Any]]) -> None:
    """Each write to both, the whole tree compared with the model after each."""
    for keys, value in writes:
        tree.set("/" + "/".join(keys), value)
        model_write(model, keys, value)
        assert tree.get("/") == (model or None), (keys, value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=12), st.lists(PATHS, max_size=6))
def test_writes_leave_what_realtime_database_would(writes: list[tuple[list[str], Any]],
                                                   reads: list[list[str]]) -> None:
    model: dict[str, Any] = {}
    with TemporaryDirectory() as folder:
        tree = LocalTree(Path(folder) / "tree.sqlite3")
        set_each(tree, model, writes)
        for keys in reads + [keys for keys, _ in writes]:
            assert tree.get("/" + "/".join(keys)) == model_read(model, keys), keys


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(PATHS, VALUES), max_size=6), st.lists(UPDATES, min_size=1, max_size=4))
def test_multi_path_updates_write_each_path_as_a_set_would(writes: list[tuple[list[str], Any]],
                                                          updates: list[tuple[list[str], dict[str, Any]]]) -> None:
    model: dict[str, Any] = {}
    with TemporaryDirectory() as folder:
        tree = LocalTree(Path(folder) / "tree.sqlite3")
        set_each(tree, model, writes)
        for base, children in updates:
            tree.patch(base, children)
            for relative, value in children.items():
                model_write(model, base + relative.split("/"), value)
            assert tree.get("/") == (model or None), (base, children)
