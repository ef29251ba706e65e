"""A worker process killed (SIGKILL) in the middle of an agent task: another process picks the task up from the
last SQLite checkpoint, and no model call made before the kill is made again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from creditflow.adapters.ai.agents import LangGraphAgents
from creditflow.adapters.local.agent_checkpoints import sqlite_checkpointer
from creditflow.domain.agents import AgentLimits
from creditflow.domain.replies import ChatReply
from creditflow.ports import Messages

ROOT = Path(__file__).resolve().parents[2]
GOAL = "add things up"
EXPRESSIONS = ("1 + 1", "2 * 3", "10 // 3")


class RecordedModel:
    """An AgentContext whose provider is scripted (three arithmetic calls, then the results), with every call it
    makes appended to a log file before it answers, so the test sees calls across processes. `kill_at` kills
    the process (SIGKILL: nothing is cleaned up) when that step is asked for."""

    def __init__(self, log: Path, kill_at: int | None = None) -> None:
        self.task_id, self.uid = "task-1", "alice"
        self.log, self.kill_at = log, kill_at

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        if step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        with self.log.open("a") as out:
            out.write(json.dumps({"key": f"{self.task_id}:{node}:{step}", "pid": os.getpid()}) + "\n")
        if step < len(EXPRESSIONS):
            call = {"id": f"call_{step}", "type": "function",
                    "function": {"name": "arithmetic", "arguments": json.dumps({"expression": EXPRESSIONS[step]})}}
            return ChatReply("", "scripted", 10, 5, "tool_calls", [call])
        return ChatReply("sum of " + ", ".join(m["content"] for m in messages if m["role"] == "tool"), "scripted",
                         10, 5, "stop")

    def progress(self, fraction: float, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def recall(self, query: str, limit: int = 5) -> list[str]:
        return []

    def document(self, reference: str) -> str:
        raise LookupError(reference)


def worker(data_dir: str, log: str, kill_at: str) -> None:
    """What the killed worker process runs."""
    runner = LangGraphAgents(sqlite_checkpointer(Path(data_dir)))
    runner.run(RecordedModel(Path(log), int(kill_at)), "analysis", GOAL, limits=AgentLimits())


def test_a_killed_worker_process_is_resumed_by_another_from_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    code = "import sys; from tests.services.test_agent_crash import worker; worker(*sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")])}
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data"), str(log), "2"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call["key"] for call in before] == ["task-1:model:0", "task-1:model:1"]

    saver = sqlite_checkpointer(tmp_path / "data")
    try:
        outcome = LangGraphAgents(saver).run(RecordedModel(log), "analysis", GOAL, limits=AgentLimits())
    finally:
        saver.conn.close()
    assert (outcome.status, outcome.result, outcome.steps, outcome.tool_calls) == ("done", "sum of 2, 6, 3", 4, 3)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call["key"] for call in calls] == [f"task-1:model:{n}" for n in range(4)]  # each step asked once
    assert {call["pid"] for call in calls[2:]} == {os.getpid()} != {call["pid"] for call in calls[:2]}
