"""Groups for pytest-xdist's `--dist loadgroup` (make test), a plugin of the test suite (tests/conftest.py loads it):
the firebase-tools suites share a worker, so their emulators never meet on firebase.json's fixed ports nor remove
each other's functions/.env.local; every other test is dealt out on its own, to whichever worker is free (a module's
servers may then start in both workers: the balance is worth more than the start-ups).

Two things undid the grouping unseen, and the firebase-tools suites ran at once now and then (a task-queue run saw
its functions lose their settings mid-run): markers added after xdist's own hook has named each test by its group
count for nothing (hence `tryfirst`), and pytest 9.2 stopped taking the name xdist gives (pytest-xdist#1386; pytest
stays at 9.1.1 until a release of xdist handles it). tests/unit/test_xdist_groups.py fails when grouping stops."""

from __future__ import annotations

import pytest

# Suites that run firebase-tools' emulators, which listen on firebase.json's fixed ports: one at a time.
FIREBASE_TOOLS_SUITES = frozenset({"test_auth_emulator.py", "test_web_firebase.py", "test_functions_emulator.py",
                                   "test_task_queue_emulator.py"})


@pytest.hookimpl(tryfirst=True)  # before xdist's, which names each test by the groups it finds then
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in FIREBASE_TOOLS_SUITES:
            item.add_marker(pytest.mark.xdist_group("firebase-tools"))
