"""Run inside `firebase emulators:exec --only functions,tasks`: enqueues jobs through the production TaskQueue
adapter (firebase-admin, pointed at the tasks emulator by CLOUD_TASKS_EMULATOR_HOST), waits for the task-queue
functions to run them (they write each attempt of a `queue.ping` job into the local tree of the data folder named),
and writes what it saw to the file named."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import firebase_admin

from creditflow.adapters.firebase.task_queue import CloudTasksQueue
from creditflow.adapters.local.tree import LocalTree
from creditflow.domain.jobs import Job
from creditflow.services.jobs import PING, Ping
from tests.ping_attempts import by_attempt


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    firebase_admin.initialize_app(options={"projectId": "demo-creditflow"})
    queue = CloudTasksQueue(emulated=True)
    seen: dict[str, object] = {
        "enqueued": [queue.enqueue(Job("ping-retried", PING, {"failAttempts": 1})),
                     queue.enqueue(Job("ping-high", PING, {}, queue="high")),
                     queue.enqueue(Job("ping-low", PING, {}, queue="low", delay_seconds=1.5))],
        "again": queue.enqueue(Job("ping-high", PING, {"other": True}, queue="high")),
        "cancel-unknown": queue.cancel("never-queued"),
    }
    tree = LocalTree(data / "realtime.sqlite3")
    wanted = {"ping-retried": 2, "ping-high": 1, "ping-low": 1}
    deadline = time.monotonic() + 90
    attempts: dict[str, object] = {}
    while time.monotonic() < deadline:
        attempts = {job: by_attempt(tree.get(Ping.path(job) + "/attempts")) for job in wanted}
        if all(len(attempts[job]) >= n for job, n in wanted.items()):  # type: ignore[arg-type]
            break
        time.sleep(0.25)
    seen["attempts"] = attempts
    seen["again-after-run"] = queue.enqueue(Job("ping-high", PING, {}, queue="high"))
    out.write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
