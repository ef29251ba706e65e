"""Agent benchmark: what checkpointing every superstep costs. The same agent graph (three tool calls, then an
answer: eight supersteps) runs with no checkpointer and on the local runtime's SqliteSaver (synchronous NORMAL, as
`make run` uses it, and FULL), with a model that answers at once, so the figures are the graph's and the saver's.

Prints the per-superstep cost beside its target. Not a test.
Run: make bench-agents   (or: functions/venv/bin/python bench/agents.py [--tasks N])
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from creditflow.adapters.ai.agents import SPECS, LangGraphAgents, Run, agent_graph, thread_of
from creditflow.adapters.local.agent_checkpoints import sqlite_checkpointer
from creditflow.domain.agents import AgentLimits
from creditflow.domain.replies import ChatReply
from creditflow.ports import Messages

TARGET_MS = 2.0
EXPRESSIONS = ("6 * 7", "2 ** 10", "(1 + 2) * 3")


class Instant:
    """An AgentContext whose model answers at once: three arithmetic calls, then the results."""

    def __init__(self, task_id: str) -> None:
        self.task_id, self.uid = task_id, "bench"

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        if step < len(EXPRESSIONS):
            call = {"id": f"call_{step}", "type": "function",
                    "function": {"name": "arithmetic", "arguments": json.dumps({"expression": EXPRESSIONS[step]})}}
            return ChatReply("", "instant", 10, 5, "tool_calls", [call])
        results = [m["content"] for m in messages if m["role"] == "tool"]
        return ChatReply("done: " + " | ".join(results), "instant", 10, 5, "stop")

    def progress(self, fraction: float, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def recall(self, query: str, limit: int = 5) -> list[str]:
        return []

    def document(self, reference: str) -> str:
        raise LookupError(reference)


def timed_bare(tasks: int) -> float:
    """Seconds for `tasks` runs of the graph with no checkpointer."""
    graph = agent_graph().compile()
    spec, limits = SPECS["analysis"], AgentLimits()
    started = time.perf_counter()
    for n in range(tasks):
        graph.invoke({"messages": [{"role": "system", "content": spec.instructions},
                                   {"role": "user", "content": "compute"}], "tool_calls": 0, "ended": None},
                     context=Run(Instant(f"bare-{n}"), limits, spec))
    return time.perf_counter() - started


def timed_saved(tasks: int, folder: Path, synchronous: str) -> tuple[float, int]:
    """Seconds for `tasks` runs through the runner on SqliteSaver, and the checkpoints one run writes."""
    saver = sqlite_checkpointer(folder, synchronous)
    runner = LangGraphAgents(saver)
    started = time.perf_counter()
    for n in range(tasks):
        outcome = runner.run(Instant(f"saved-{n}"), "analysis", "compute", limits=AgentLimits())
        assert outcome.result == "done: 42 | 1024 | 9", outcome
    elapsed = time.perf_counter() - started
    steps = len(list(saver.list({"configurable": {"thread_id": thread_of(Instant("saved-0"))}})))
    saver.conn.close()
    return elapsed, steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    tasks = parser.parse_args().tasks
    timed_bare(5)  # warm up imports and caches
    bare = timed_bare(tasks)
    print(f"agents: {tasks} tasks, each three tool calls and an answer")
    print(f"  {'no checkpointer':<44} {bare / tasks * 1000:>8.2f} ms/task")
    for synchronous in ("NORMAL", "FULL"):
        with tempfile.TemporaryDirectory() as folder:
            saved, steps = timed_saved(tasks, Path(folder), synchronous)
        per_step = (saved - bare) / tasks / steps * 1000
        print(f"  {'SqliteSaver, synchronous ' + synchronous:<44} {saved / tasks * 1000:>8.2f} ms/task   "
              f"{steps} checkpoints: {per_step:.2f} ms per superstep   target <= {TARGET_MS:.0f} ms"
              + ("" if synchronous == "NORMAL" else "   (not used: for comparison)"))


if __name__ == "__main__":
    main()
