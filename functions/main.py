"""Firebase entry points: decorators only, each delegating to creditflow.entrypoints (imported on first use).

An instance started for one function (Cloud Functions and the emulator name it in FUNCTION_TARGET) defines only
that function, so its cold start imports only its own trigger's SDK module; deploy-time discovery, which sets no
target, defines them all. The Firestore trigger's instance imports none: it is handed the raw CloudEvent and
needs only an attribute of it, so it is a plain handler there (the decorated one declares it at discovery).
"""

import os
from typing import TYPE_CHECKING

from firebase_admin import initialize_app

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

initialize_app()  # callable functions verify ID tokens with the default app before our code runs
SECRETS = ["LEDGER_SIGNING_KEY"]
TARGET = os.environ.get("FUNCTION_TARGET") or None


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

        return claim_welcome_bonus(request.auth, request.data, request.raw_request.remote_addr)


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

    @db_fn.on_value_created(reference="/requests/{uid}/{requestId}", secrets=SECRETS)
    def submitRequest(event: db_fn.Event[object]) -> None:
        from creditflow.entrypoints.triggers import request_written

        request_written(event.params["uid"], event.params["requestId"], None, event.data)


if serves("cancelRequest"):
    from firebase_functions import db_fn

    @db_fn.on_value_written(reference="/requests/{uid}/{requestId}/cancel", secrets=SECRETS)
    def cancelRequest(event: db_fn.Event[db_fn.Change[object]]) -> None:
        from creditflow.entrypoints.triggers import request_written

        request_written(event.params["uid"], event.params["requestId"], {"cancel": event.data.before},
                        {"cancel": event.data.after})


if serves("answerRequest"):
    from firebase_functions import db_fn

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
