"""The Firebase functions manifest, built offline by firebase_functions.private.serving from main.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
MANIFEST = ("from firebase_functions.private.serving import functions_as_yaml, get_functions\n"
            "print(functions_as_yaml(get_functions()))")
FUNCTIONS_DEFINED = ("api", "claimWelcomeBonus", "expireHolds", "publishCheckpoint", "mirrorAccount", "submitRequest",
                     "cancelRequest", "answerRequest", "expireTasks", "runTaskHigh", "runTask", "runTaskLow",
                     "sweepMedia", "scanChain")


def python(code: str, target: str | None = None, **variables: str) -> str:
    """Run `code` in functions/ as a fresh interpreter, as the instance of `target` (None: deploy discovery)."""
    env = {key: value for key, value in os.environ.items() if key not in ("FUNCTION_TARGET", "CREDITFLOW_SECRETS")}
    env.update(variables)
    if target is not None:
        env["FUNCTION_TARGET"] = target
    return subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout


def test_every_function_its_trigger_and_options() -> None:
    endpoints = yaml.safe_load(python(MANIFEST))["endpoints"]
    assert set(endpoints) == set(FUNCTIONS_DEFINED)
    assert "httpsTrigger" in endpoints["api"]
    assert "callableTrigger" in endpoints["claimWelcomeBonus"]
    trigger = endpoints["mirrorAccount"]["eventTrigger"]
    assert trigger["eventType"] == "google.cloud.firestore.document.v1.written"
    assert trigger["eventFilterPathPatterns"] == {"document": "accounts/{accountId}"}
    assert endpoints["expireHolds"]["scheduleTrigger"]["schedule"] == "every 1 minutes"
    assert endpoints["publishCheckpoint"]["scheduleTrigger"]["schedule"] == "every 5 minutes"
    assert endpoints["expireTasks"]["scheduleTrigger"]["schedule"] == "every 1 minutes"
    assert endpoints["sweepMedia"]["scheduleTrigger"]["schedule"] == "every 60 minutes"
    assert endpoints["scanChain"]["scheduleTrigger"]["schedule"] == "every 1 minutes"
    for name, event, ref in (("submitRequest", "created", "requests/{uid}/{requestId}"),
                             ("cancelRequest", "written", "requests/{uid}/{requestId}/cancel"),
                             ("answerRequest", "written", "requests/{uid}/{requestId}/answer")):
        trigger = endpoints[name]["eventTrigger"]
        assert trigger["eventType"] == f"google.firebase.database.ref.v1.{event}"
        assert trigger["eventFilterPathPatterns"] == {"instance": "*", "ref": ref}
        # firebase-functions' Python SDK (0.6) takes no retry option for database triggers and declares `false`;
        # main.py declares them redelivered, as the platform allows: a request whose instance died is answered
        assert trigger["retry"] is True
    assert endpoints["mirrorAccount"]["eventTrigger"]["retry"] is False  # the next change writes the mirror anew
    # a quick task runs inline in the request's trigger until its deadline (5 minutes): not cut at the default 60 s
    assert endpoints["submitRequest"]["timeoutSeconds"] == 540
    for endpoint in endpoints.values():
        assert endpoint["secretEnvironmentVariables"] == [{"key": "LEDGER_SIGNING_KEY"}]


def test_the_secrets_named_in_functions_env_reach_every_function() -> None:
    """Stripe's and the providers' keys live in Secret Manager: named in CREDITFLOW_SECRETS, each function is given
    them (a key only in the environment of the emulator's .secret.local reached nothing deployed)."""
    endpoints = yaml.safe_load(python(MANIFEST, CREDITFLOW_SECRETS="STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET,"
                                                                    "AI_PLATFORM_API_KEY"))["endpoints"]
    for endpoint in endpoints.values():
        assert endpoint["secretEnvironmentVariables"] == [{"key": name} for name in (
            "LEDGER_SIGNING_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "AI_PLATFORM_API_KEY")]
    with pytest.raises(subprocess.CalledProcessError) as refused:
        python(MANIFEST, CREDITFLOW_SECRETS="stripe key")
    assert "CREDITFLOW_SECRETS names stripe key" in refused.value.stderr


def test_one_task_queue_function_per_priority_with_its_retries_and_rate_limits() -> None:
    """The queues the production TaskQueue enqueues into (one per priority) are declared with the retry policy the
    job handler's `Delivery.final` assumes (main.TASK_RETRY) and each queue's own dispatch limits."""
    from creditflow.adapters.firebase.task_queue import FUNCTIONS

    endpoints = yaml.safe_load(python(MANIFEST))["endpoints"]
    retry = {"maxAttempts": 5, "minBackoffSeconds": 10, "maxBackoffSeconds": 600, "maxDoublings": 6}
    limits = {"runTaskHigh": (200, 100), "runTask": (100, 50), "runTaskLow": (20, 10)}
    assert set(FUNCTIONS.values()) == set(limits)
    for name, (concurrent, per_second) in limits.items():
        trigger = endpoints[name]["taskQueueTrigger"]
        assert {k: v for k, v in trigger["retryConfig"].items() if v is not None} == retry
        assert trigger["rateLimits"] == {"maxConcurrentDispatches": concurrent, "maxDispatchesPerSecond": per_second}
        assert endpoints[name]["timeoutSeconds"] == 540
        assert "_" not in name  # Cloud Tasks queue names of task-queue functions may not hold one


def test_main_imports_no_heavy_modules() -> None:
    probe = ("import sys; import main; "
             "print(sorted(m for m in ('creditflow.bootstrap', 'google.cloud.firestore', 'nacl', 'rfc8785') "
             "if m in sys.modules))")
    assert python(probe).strip() == "[]", "main.py must defer the platform's imports to first use"


@pytest.mark.parametrize("target", FUNCTIONS_DEFINED)
def test_an_instance_defines_and_imports_only_its_own_function(target: str) -> None:
    probe = ("import sys; import main; "
             f"print([name for name in {FUNCTIONS_DEFINED!r} if hasattr(main, name)], "
             "'firebase_functions.firestore_fn' in sys.modules)")
    defined, firestore_trigger = python(probe, target).strip().rsplit(" ", 1)
    assert defined == repr([target])
    assert firestore_trigger == "False"  # the heaviest SDK module: only deploy-time discovery declares with it
    endpoints = yaml.safe_load(python(MANIFEST, target))["endpoints"]
    # mirrorAccount's instance is a plain CloudEvent handler (next test); discovery, which declares it, sets no target
    assert set(endpoints) == (set() if target == "mirrorAccount" else {target})


FIRESTORE_EVENT = """
import json, sys
import creditflow.entrypoints.triggers as triggers
seen = []
triggers.mirror_account = seen.append  # the platform needs Firestore and RTDB: record what it is asked instead
from cloudevents.http import CloudEvent
from google.events.cloud import firestore as events
import main
path = "accounts/" + sys.argv[1]
data = events.DocumentEventData.serialize(events.DocumentEventData(value=events.Document(
    name="projects/demo-creditflow/databases/(default)/documents/" + path)))
main.mirrorAccount(CloudEvent({
    "id": "1", "specversion": "1.0", "type": "google.cloud.firestore.document.v1.written",
    "source": "//firestore.googleapis.com/projects/demo-creditflow/databases/(default)", "time": "2026-11-28T00:00:00Z",
    "document": path, "subject": "documents/" + path, "database": "(default)", "namespace": "(default)",
    "project": "demo-creditflow", "location": "nam5", "datacontenttype": "application/protobuf"}, data))
print(json.dumps(seen))
"""


@pytest.mark.parametrize("account", ["user:alice", "user:Q1-w_2.x~"])
def test_the_firestore_trigger_instance_mirrors_what_the_sdk_decorated_one_does(account: str) -> None:
    """The same Firestore event (as Eventarc sends it: attributes and a protobuf document) reaches the platform as
    the same account, through the SDK's decorator (deploy-time discovery defines that one) and through the plain
    handler an instance of mirrorAccount defines, which does without firestore_fn."""
    env = {"GOOGLE_CLOUD_PROJECT": "demo-creditflow", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}  # never called
    asked = {}
    for target in (None, "mirrorAccount"):
        done = subprocess.run([sys.executable, "-c", FIRESTORE_EVENT, account], cwd=FUNCTIONS, capture_output=True,
                              text=True, timeout=120, env={**{k: v for k, v in os.environ.items()
                                                              if k != "FUNCTION_TARGET"}, **env,
                                                           **({"FUNCTION_TARGET": target} if target else {})})
        assert done.returncode == 0, done.stderr[-2000:]
        asked[target] = done.stdout.strip()
    assert asked == {None: f'["{account}"]', "mirrorAccount": f'["{account}"]'}


def test_the_instance_handler_mirrors_account_documents_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from creditflow.entrypoints import triggers

    asked: list[str] = []
    monkeypatch.setattr(triggers, "mirror_account", asked.append)
    for document in ("accounts/user:bob", "accounts/user:bob/entries/tx_1", "holds/h1", "accounts/", "accounts"):
        triggers.mirror_account_document(document)
    assert asked == ["user:bob"]
