"""Firebase entry points: decorators only, each delegating to creditflow.entrypoints (imported on first use)."""

from firebase_functions import https_fn, scheduler_fn
from firebase_functions.options import MemoryOption

SECRETS = ["LEDGER_SIGNING_KEY"]


@https_fn.on_request(secrets=SECRETS, memory=MemoryOption.MB_512)
def api(request: https_fn.Request) -> https_fn.Response:
    from creditflow.entrypoints.http.firebase import handle

    return handle(request)


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=SECRETS)
def expireHolds(event: scheduler_fn.ScheduledEvent) -> None:
    from creditflow.entrypoints.triggers import expire_holds

    expire_holds()


@scheduler_fn.on_schedule(schedule="every 5 minutes", secrets=SECRETS)
def publishCheckpoint(event: scheduler_fn.ScheduledEvent) -> None:
    from creditflow.entrypoints.triggers import publish_checkpoint

    publish_checkpoint()
