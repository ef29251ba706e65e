"""Sagas: long work as named steps. Each step's output (and so what undoing it needs) is recorded before the next
step begins; a redelivery resumes at the first unfinished step; a permanent failure undoes the finished steps in
reverse, each undo recorded once. A crash between a step's effect and its record runs the step again, so steps (and
undos) are idempotent, keyed by their task and name. Image generation and payments run through here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..domain.errors import LedgerError, ProviderUnavailable, ServerBusy

log = logging.getLogger(__name__)
DONE, UNDONE = "done", "undone"
TRANSIENT = (ProviderUnavailable, ServerBusy)  # refusals that say "not now": an outage, a busy store, contention


class Permanent(Exception):
    """Raised by a step that can never succeed (a refused request, an invalid result): the saga undoes itself, as
    it does for a LedgerError, unless that error is TRANSIENT. Any other exception, and a transient LedgerError, is
    taken as passing (a provider outage, a busy store, a crash) and leaves the saga to be resumed."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason, self.cause = reason, cause


class SagaFailed(Exception):
    """The saga failed for good and every finished step was undone."""

    def __init__(self, step: str, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason, self.cause = step, reason, cause


class Journal(Protocol):
    """Where a saga's progress is kept: step name -> {"status": done|undone, "output": JSON}."""

    def load(self) -> dict[str, dict[str, Any]]: ...

    def record(self, step: str, entry: dict[str, Any]) -> None:
        """Persist one step's entry before anything else happens (compare-and-set where the store has it)."""


Outputs = dict[str, Any]  # the outputs of the steps finished so far, by name


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Outputs], Any]  # given the earlier outputs; returns this step's output (JSON)
    undo: Callable[[Any], None] | None = None  # given this step's output; must be idempotent


@dataclass(frozen=True)
class Saga:
    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"saga {self.name} repeats a step name")

    def run(self, journal: Journal, progress: Callable[[int, int, str], None] | None = None) -> Outputs:
        """Run the steps not yet done, in order; returns every step's output."""
        entries = journal.load()
        outputs: Outputs = {name: entry["output"] for name, entry in entries.items() if entry.get("status") == DONE}
        if any(entry.get("status") == UNDONE for entry in entries.values()):
            self._undo(journal, outputs)  # a crash may have cut the undoing short: the steps still done are undone
            raise SagaFailed(self._failed_step(entries), "it failed earlier and was undone")
        for n, step in enumerate(self.steps):
            if step.name in outputs:
                continue
            if progress is not None:
                progress(n, len(self.steps), step.name)
            try:
                output = step.run(dict(outputs))
            except TRANSIENT:
                raise  # not the request's fault: the saga resumes at this step on the next attempt
            except (Permanent, LedgerError) as failure:
                reason = failure.reason if isinstance(failure, Permanent) else failure.detail
                self._undo(journal, outputs)
                journal.record(f"!{step.name}", {"status": UNDONE, "output": {"reason": reason[:500]}})
                raise SagaFailed(step.name, reason, failure) from failure
            journal.record(step.name, {"status": DONE, "output": output})
            outputs[step.name] = output
        return outputs

    def undo(self, journal: Journal, reason: str) -> None:
        """Undo every finished step (a cancel, a deadline, the last attempt spent), once."""
        entries = journal.load()
        outputs = {name: entry["output"] for name, entry in entries.items() if entry.get("status") == DONE}
        self._undo(journal, outputs)
        if not any(name.startswith("!") for name in entries):
            journal.record("!undo", {"status": UNDONE, "output": {"reason": reason[:500]}})

    def _undo(self, journal: Journal, outputs: Outputs) -> None:
        for step in reversed(self.steps):
            if step.name not in outputs:
                continue
            if step.undo is not None:
                step.undo(outputs[step.name])
            journal.record(step.name, {"status": UNDONE, "output": outputs[step.name]})
            del outputs[step.name]

    @staticmethod
    def _failed_step(entries: dict[str, dict[str, Any]]) -> str:
        return next((name[1:] for name in entries if name.startswith("!")), "?")
