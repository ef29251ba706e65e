"""The task deadlines read from the environment, and refused where the runtime cannot keep them."""

from __future__ import annotations

import pytest

from creditflow.config import Settings


def test_a_quick_task_on_firebase_fits_the_trigger_it_runs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Firebase a quick task runs inline in the request's trigger, which may run 9 minutes at most; locally a
    quick task may be given longer."""
    monkeypatch.setenv("QUICK_TASK_MINUTES", "10")
    assert Settings.from_env(runtime="local").quick_task_minutes == 10
    with pytest.raises(ValueError, match=r"QUICK_TASK_MINUTES.*9 minutes"):
        Settings.from_env(runtime="firebase")
    monkeypatch.setenv("QUICK_TASK_MINUTES", "9")
    assert Settings.from_env(runtime="firebase").quick_task_minutes == 9


def test_twenty_users_chatting_at_once_all_run_inline_by_default() -> None:
    """Past the inline capacity a quick task waits on the queue for one of its few workers, each busy with a whole
    run: with 8, a third of the chat turns of 20 users chatting at once were queued, and their first token came
    some 200 ms later."""
    from creditflow.domain.tasks import Classification
    from creditflow.services.task_routing import Router

    router = Router(Settings.from_env(runtime="local").inline_capacity)
    quick = Classification("quick", 10, 1000, "chat")
    assert [router.choose(quick, "normal")[0] for _ in range(20)] == ["inline"] * 20
