"""`keep_newest`, which bounds a user's notifications and finished tasks in the mirror: a path may hold a tenth more
than it keeps (at least one more) before its oldest go, and only those it may remove go."""

from __future__ import annotations

from pathlib import Path

from creditflow.adapters.local.tree import LocalTree
from creditflow.services.notifications import keep_newest, over_kept


def test_a_path_keeps_at_least_one_more_before_its_oldest_go(tmp_path: Path) -> None:
    """With 5 kept (a tenth of it rounds to none) the sixth stays until a seventh comes: at least one more, so that
    not every write past the bound pays for the query of the oldest."""
    tree = LocalTree(tmp_path / "tree.sqlite3")
    counts = []
    for n in range(9):
        tree.set(f"/notifications/u/n{n}", {"at": f"2026-01-01T00:00:0{n}Z"})
        keep_newest(tree, "/notifications/u", "at", 5)
        counts.append(len(tree.keys("/notifications/u")))
    assert counts == [1, 2, 3, 4, 5, 6, 5, 6, 5]
    assert sorted(tree.keys("/notifications/u")) == [f"n{n}" for n in range(4, 9)]  # the newest
    assert [over_kept(kept) for kept in (1, 9, 10, 25, 200)] == [1, 1, 1, 2, 20]


def test_only_what_may_be_removed_goes(tmp_path: Path) -> None:
    """A task still running is among the oldest: it stays (the mirror of an unfinished task is its user's only
    view of it), and the others go."""
    tree = LocalTree(tmp_path / "tree.sqlite3")
    for n, state in enumerate(["running", "succeeded", "failed", "succeeded", "succeeded"]):
        tree.set(f"/tasks/u/t{n}", {"createdAt": n, "state": state})
    keep_newest(tree, "/tasks/u", "createdAt", 2, lambda task: task["state"] != "running")
    assert sorted(tree.keys("/tasks/u")) == ["t0", "t3", "t4"]
