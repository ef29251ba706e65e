"""Firebase entry points: decorators only, each delegating to creditflow.entrypoints (imported on first use).

An instance started for one function (Cloud Functions and the emulator name it in FUNCTION_TARGET) defines only
that function, so its cold start imports only its own trigger's SDK module; deploy-time discovery, which sets no
target, defines them all. The Firestore trigger's instance imports none: it is handed the raw CloudEvent and
needs only an attribute of it, so it is a plain handler there (the decorated one declares it at discovery).
"""

from typing import TYPE_CHECKING

from firebase_admin import initialize_app

from creditflow.config import function_secrets, function_target
from creditflow.entrypoints.redelivery import redelivered

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

initialize_app()  # callable functions verify ID tokens with the default app before our code runs
SECRETS = function_secrets()  # LEDGER_SIGNING_KEY and those CREDITFLOW_SECRETS names (Stripe's, providers' keys)
TARGET = function_target()
# The task-queue functions' Cloud Tasks queues, one per priority (creditflow.adapters.firebase.task_queue enqueues):
# retried up to 5 attempts, 10 s after the first failure, doubling up to 10 min; each queue's own dispatch limits;
# an attempt may run 9 minutes (within Cloud Tasks' 10-minute dispatch deadline).
TASK_RETRY = {"max_attempts": 5, "min_backoff_seconds": 10, "max_backoff_seconds": 600, "max_doublings": 6}
TASK_RATES = {"runTaskHigh": (200, 100), "runTask": (100, 50), "runTaskLow": (20, 10)}  # (concurrent, per second)


def serves(name: str) -> bool:
    return TARGET is None or name == TARGET


if serves("api"):
    from firebase_functions import https_fn
    from firebase_functions.options import MemoryOption

    @https_fn.on_request(secrets=SECRETS, memory=MemoryOption.MB_512)
    def api(request: https_fn.Request) -> https_fn.Response:
        from creditflow.entrypoints.http.firebase import handle

        return handle(request)


if serves("claimWelcomeBonus"):
    from firebase_functions import https_fn

    @https_fn.on_call(secrets=SECRETS)
    def claimWelcomeBonus(request: https_fn.CallableRequest) -> dict:
        from creditflow.entrypoints.callables import claim_welcome_bonus

        return claim_welcome_bonus(request.auth, request.data, request.raw_request)


if serves("expireHolds"):
    from firebase_functions import scheduler_fn

    @scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=SECRETS)
    def expireHolds(event: scheduler_fn.ScheduledEvent) -> None:
        from creditflow.entrypoints.triggers import expire_holds

        expire_holds()


if serves("publishCheckpoint"):
    from firebase_functions import scheduler_fn

    @scheduler_fn.on_schedule(schedule="every 5 minutes", secrets=SECRETS)
    def publishCheckpoint(event: scheduler_fn.ScheduledEvent) -> None:
        from creditflow.entrypoints.triggers import publish_checkpoint

        publish_checkpoint()


if serves("mirrorAccount"):
    if TARGET is None:  # deploy-time discovery: the SDK's decorator declares the Firestore trigger
        from firebase_functions import firestore_fn

        @firestore_fn.on_document_written(document="accounts/{accountId}", secrets=SECRETS)
        def mirrorAccount(event: firestore_fn.Event[firestore_fn.Change[firestore_fn.DocumentSnapshot | None]]) -> None:
            from creditflow.entrypoints.triggers import mirror_account

            mirror_account(event.params["accountId"])

    else:

        def mirrorAccount(event: "CloudEvent") -> None:
            """An instance of the trigger is handed the raw CloudEvent (FUNCTION_SIGNATURE_TYPE=cloudevent). The
            mirror needs only the document's path, an attribute of the event, so this instance does without the
            SDK's decorator, which imports firestore_fn (a cold start 1.3x the bare SDKs) and decodes the document."""
            from creditflow.entrypoints.triggers import mirror_account_document

            mirror_account_document(event["document"])


if serves("submitRequest"):
    from firebase_functions import db_fn

    # a quick task runs inline here, until its deadline (QUICK_TASK_MINUTES, 5 by default): not cut at the
    # default 60 s; 540 s is the most an event-driven function may have
    @redelivered
    @db_fn.on_value_created(reference="/requests/{uid}/{requestId}", secrets=SECRETS, timeout_sec=540)
    def submitRequest(event: db_fn.Event[object]) -> None:
        from creditflow.entrypoints.triggers import request_written

        request_written(event.params["uid"], event.params["requestId"], None, event.data)


if serves("cancelRequest"):
    from firebase_functions import db_fn

    @redelivered
    @db_fn.on_value_written(reference="/requests/{uid}/{requestId}/cancel", secrets=SECRETS)
    def cancelRequest(event: db_fn.Event[db_fn.Change[object]]) -> None:
        from creditflow.entrypoints.triggers import request_written

        request_written(event.params["uid"], event.params["requestId"], {"cancel": event.data.before},
                        {"cancel": event.data.after})


if serves("answerRequest"):
    from firebase_functions import db_fn

    @redelivered
    @db_fn.on_value_written(reference="/requests/{uid}/{requestId}/answer", secrets=SECRETS)
    def answerRequest(event: db_fn.Event[db_fn.Change[object]]) -> None:
        from creditflow.entrypoints.triggers import request_written

        request_written(event.params["uid"], event.params["requestId"], {"answer": event.data.before},
                        {"answer": event.data.after})


if serves("expireTasks"):
    from firebase_functions import scheduler_fn

    @scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=SECRETS)
    def expireTasks(event: scheduler_fn.ScheduledEvent) -> None:
        from creditflow.entrypoints.triggers import expire_tasks

        expire_tasks()


if serves("sweepMedia"):
    from firebase_functions import scheduler_fn

    @scheduler_fn.on_schedule(schedule="every 60 minutes", secrets=SECRETS)
    def sweepMedia(event: scheduler_fn.ScheduledEvent) -> None:
        from creditflow.entrypoints.triggers import sweep_media

        sweep_media()


if serves("scanChain"):
    from firebase_functions import scheduler_fn

    @scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=SECRETS)
    def scanChain(event: scheduler_fn.ScheduledEvent) -> None:
        from creditflow.entrypoints.triggers import scan_chain

        scan_chain()
if serves("runTaskHigh") or serves("runTask") or serves("runTaskLow"):
    from firebase_functions import tasks_fn
    from firebase_functions.options import RateLimits, RetryConfig

    def task_options(name: str) -> dict:
        concurrent, per_second = TASK_RATES[name]
        return {"secrets": SECRETS, "timeout_sec": 540, "retry_config": RetryConfig(**TASK_RETRY),
                "rate_limits": RateLimits(max_concurrent_dispatches=concurrent, max_dispatches_per_second=per_second)}


if serves("runTaskHigh"):

    @tasks_fn.on_task_dispatched(**task_options("runTaskHigh"))
    def runTaskHigh(request: tasks_fn.CallableRequest) -> dict:
        from creditflow.entrypoints.triggers import run_dispatched_task

        return run_dispatched_task(request.data, request.raw_request.headers, TASK_RETRY["max_attempts"])


if serves("runTask"):

    @tasks_fn.on_task_dispatched(**task_options("runTask"))
    def runTask(request: tasks_fn.CallableRequest) -> dict:
        from creditflow.entrypoints.triggers import run_dispatched_task

        return run_dispatched_task(request.data, request.raw_request.headers, TASK_RETRY["max_attempts"])


if serves("runTaskLow"):

    @tasks_fn.on_task_dispatched(**task_options("runTaskLow"))
    def runTaskLow(request: tasks_fn.CallableRequest) -> dict:
        from creditflow.entrypoints.triggers import run_dispatched_task

        return run_dispatched_task(request.data, request.raw_request.headers, TASK_RETRY["max_attempts"])
