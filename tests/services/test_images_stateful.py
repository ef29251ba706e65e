"""A Hypothesis state machine over image tasks and their saga: submissions and their duplicates, deliveries (repeated,
out of order, last or not), the worker dying or failing after any step's effect and before its record, cancels
(before the run, and at any step of it), restarts, deadlines, the sweeper and the orphan sweep, in any order.
Whatever the order: every task ends once with one outcome, never charged more than it held, and a task that
succeeded is charged the price of what it delivered, and one that did not is charged nothing; the ledger holds
exactly what unfinished tasks hold; once every task has ended, the user paid exactly what the tasks were charged,
and the store keeps exactly the images of the tasks that succeeded (each with its two thumbnails) and nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, rule

from creditflow.domain.jobs import Delivery
from creditflow.domain.media import GeneratedImage
from creditflow.domain.tasks import SUCCEEDED
from creditflow.services.images import STEPS
from tests.conftest import CREDIT
from tests.fake_images import drawn
from tests.task_machine import (
    OneUsersTasks,
    assert_the_audit_finds_no_error,
    run_every_task_to_its_end,
    run_to_the_end,
)

UID = "painter"
FUNDS = CREDIT
IDS = st.sampled_from([f"i{n}" for n in range(6)])
STOPS = st.none() | st.tuples(st.sampled_from(["die", "fail", "cancel"]), st.sampled_from(STEPS))


class Died(BaseException):
    """The worker died here: nothing after it runs (not an Exception: no handler sees it)."""


class Failed(Exception):
    """A step's passing failure (an outage, a bug): the delivery fails, and the queue tries again."""


class Drawing:
    """The demo provider, drawing `good` images of the size asked (of the `n` asked)."""

    name = "demo"

    def __init__(self) -> None:
        self.good = 4

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        return [GeneratedImage(drawn(width, height, shade=i), "image/png") for i in range(min(self.good, n))]


class ImageEvents(OneUsersTasks):
    uid, funds = UID, FUNDS

    submitted = Bundle("submitted")

    @initialize(target=submitted)
    def start(self) -> str:
        """A platform with a funded user, and a first request of two images written."""
        self.open_platform("images-machine-")
        self.drawing = Drawing()
        self.platform.images.providers["demo"] = self.drawing  # type: ignore[assignment]
        self.platform.images.sleep = lambda _: None  # no backoff between the provider's attempts
        return self.submit("i0", 2, 256)

    @rule(target=submitted, task_id=IDS, n=st.integers(1, 3), side=st.sampled_from([256, 512]))
    def submit(self, task_id: str, n: int, side: int) -> str:
        """An image request written (again: a duplicate delivery changes nothing, whatever it says)."""
        self.platform.tasks.submit(UID, task_id, {"kind": "image",
                                                  "input": {"prompt": "a fox", "n": n, "size": f"{side}x{side}"}})
        return task_id

    @rule(good=st.integers(0, 3))
    def the_provider_draws(self, good: int) -> None:
        """How many images the provider delivers from now on (none: the provider's failure)."""
        self.drawing.good = good

    @rule(task_id=submitted, attempt=st.integers(1, 3), final=st.booleans(), stop=STOPS)
    def deliver(self, task_id: str, attempt: int, final: bool, stop: tuple[str, str] | None) -> None:
        """A queue delivery of the task's run; `stop`: after one step's effect (before its record), the worker
        dies, the step fails, or the user's cancel arrives."""
        images = self.platform.images

        def hook(task: object, name: str) -> None:
            if stop is None or name != stop[1]:
                return
            images.after_step = None  # once
            if stop[0] == "die":
                raise Died(name)
            if stop[0] == "fail":
                raise Failed(name)
            self.platform.tasks.cancel(UID, task_id)

        images.after_step = hook
        try:
            # a failed attempt that is not the last is raised for the queue, which tries again; the last one ends
            # the task (a dead letter) and raises nothing
            with contextlib.suppress(Died, *(() if final else (Exception,))):
                self.platform.tasks.run(UID, task_id, Delivery(attempt, final))
        finally:
            images.after_step = None

    @rule(task_id=submitted)
    def cancel(self, task_id: str) -> None:
        self.platform.tasks.cancel(UID, task_id)

    @rule()
    def orphan_sweep(self) -> None:
        self.platform.images.sweep()

    @invariant()
    def a_task_is_charged_what_it_delivered_and_nothing_else(self) -> None:
        """One that succeeded, the price of its images; one that ended otherwise delivered none, and costs
        nothing (its images, if any were stored, are removed)."""
        if not hasattr(self, "platform"):
            return
        for task in self.known():
            if task.state == SUCCEEDED:
                per_image = task.result["perImage"]["micros"]
                assert task.charged == per_image * task.result["delivered"] > 0, task
                assert task.result["delivered"] <= task.request.input["n"]
            elif task.terminal:
                assert task.charged == 0, task

    def check_everything_ends(self) -> None:
        """After the last event: every task is run to its end (or past its deadline), the orphan sweep runs, and
        the money and the store add up."""
        self.platform.images.after_step = None
        known = run_every_task_to_its_end(self, UID, rounds=2)
        self.platform.images.sweep()
        self.once_all_ended_the_user_paid_what_the_tasks_were_charged()
        kept = sorted(info.path for info in self.platform.blobs.list(f"users/{UID}/"))
        expected = sorted(path for t in known if t.state == SUCCEEDED
                          for image in self.platform.images.shown(t) for path in image.paths)
        assert kept == expected
        assert all(len(image.paths) == 3 for t in known for image in self.platform.images.shown(t))
        assert_the_audit_finds_no_error(self.platform)


test_image_events = run_to_the_end(ImageEvents, max_examples=100)
