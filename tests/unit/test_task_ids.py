"""Task ids: a replay's id is a valid id, never its task's own, and a chain of replays never repeats one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.tasks import replay_id, require_task_id, task_of_entry

task_ids = st.text(st.sampled_from("abcXYZ019-_"), min_size=1, max_size=64)


@given(task_ids)
def test_replays_of_replays_are_valid_ids_and_all_new(task_id: str) -> None:
    chain = [task_id]
    for _ in range(6):
        chain.append(require_task_id(replay_id(chain[-1])))
    assert len(set(chain)) == len(chain)


def test_a_short_id_reads_as_its_replay() -> None:
    assert replay_id("poison") == "poison-replay"
    assert replay_id("x" * 57) == "x" * 57 + "-replay"  # 64: still fits


def test_an_entry_names_its_task_by_its_key_or_its_memo() -> None:
    assert task_of_entry("task:t1:hold", {}) == "t1"
    assert task_of_entry("task:t-1_x:model:0:settle", {"model": "m"}) == "t-1_x"
    assert task_of_entry("task:a1-img-0f:hold", {"task": "a1-img-0f"}) == "a1-img-0f"
    assert task_of_entry("cs_test_123", {"task": "t2"}) == "t2"  # a key of another kind: the memo says
    assert task_of_entry("welcome:u", {}) is None and task_of_entry("", {}) is None
    assert task_of_entry("task:", {}) is None and task_of_entry("task:a/b:hold", {}) is None
    assert task_of_entry("task:t1", {}) is None  # not a key a task's command is written under
    assert task_of_entry("k", {"task": "not/an id"}) is None
