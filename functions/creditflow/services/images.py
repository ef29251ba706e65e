"""Image generation: one service behind the bus's `image` tasks, POST /api/v1/images and /v1/images/generations.

The price comes first, from the catalog (model, width × height, steps, n: `domain.images.quote_images`), and it is
the task's hold. Then a saga whose steps are kept in the task's record (services.sagas, TaskJournal):

    reserve → generate → validate → store → thumbnails → settle → notify

reserve records the hold and the prices the rest of the run keeps to; generate calls the provider (retried with
backoff on 5xx, 429 and timeouts) and stages its bytes beside the task's folder, so that a crash after it does not
ask the provider again; validate opens each image with Pillow (format, pixel count, the decompression-bomb guard)
and drops what is not one, or not of the size asked and priced; store writes the originals
(`users/{uid}/images/{taskId}/{n}.{ext}`, their content type, cache control and metadata: model, prompt hash, task
id) and thumbnails the WebP thumbnails (256 and 512 on the long side); settle captures from the task's hold the
price of the images delivered, and only those; notify tells the user. Each step reports progress on
/tasks/{uid}/{taskId}. A permanent failure (the provider refusing the prompt, nothing usable delivered) undoes the
finished steps, deleting what was stored, and the task flow frees the hold; a task that ends in any other way than
succeeded has its folder cleared (`abandon`), and `sweep` removes whatever a crash left behind for a task that never
succeeded."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

from ..domain.catalog import Model
from ..domain.errors import BudgetExhausted, LedgerError, OverRequestLimit, ProviderUnavailable
from ..domain.health import Health
from ..domain.images import (
    ImageQuote,
    InvalidImage,
    InvalidImageRequest,
    check_delivered,
    check_prompt,
    default_size,
    kept_images,
    parse_size,
    provider_extras,
    quote_images,
    steps_for,
)
from ..domain.media import ImageLimits, Swept, sweep_window
from ..domain.money import format_credits, money
from ..domain.tasks import (
    SUCCEEDED,
    TERMINAL,
    InvalidTask,
    Task,
    TaskRequest,
    UnknownTask,
    parse_request,
    require_task_id,
)
from ..domain.timefmt import iso
from ..ports import BlobStore, Clock, ImageProvider, ImageTools, TaskStore
from .catalog import LiveCatalog
from .chat import Budget
from .notifications import Notifications
from .sagas import Journal, Saga, SagaFailed, Step
from .task_runs import Context, RunOutcome
from .tasks import TaskJournal, Tasks

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCEL_POLL_SECONDS = 1.0  # how soon a cancel ends the wait for a drawing (each look may be a billed read)
STEPS = ("reserve", "generate", "validate", "store", "thumbnails", "settle", "notify")
SAYS = {"reserve": "priced and held", "generate": "the model is drawing", "validate": "checking the images",
        "store": "storing the originals", "thumbnails": "making thumbnails", "settle": "charging what was delivered",
        "notify": "telling you"}
THUMBNAILS = (256, 512)
IMAGES = frozenset({"image"})  # the kind of task that makes images, as a filter of the task store
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
CACHE_CONTROL = "private, max-age=31536000, immutable"  # an object's bytes never change under its path
INPUT = {"size": "size", "n": "n", "steps": "steps", "seed": "seed", "negativePrompt": "negative_prompt"}
UNCHARGED = frozenset({"reserve", "generate", "validate", "store", "thumbnails"})  # before settle: nothing charged


@dataclass(frozen=True)
class ImagePolicy:
    attempts: int = 3  # provider calls per delivery of the task: 5xx, 429 and timeouts are tried again
    backoff_seconds: float = 0.5  # before the second call, doubled before each after it
    backoff_max_seconds: float = 8.0
    url_seconds: int = 3600  # how long a signed URL in a result serves
    limits: ImageLimits = field(default_factory=ImageLimits)


@dataclass(frozen=True)
class ShownImage:
    """One of a succeeded task's images, as its user is shown it: the image, and its task's facts."""

    id: str  # taskId.index
    path: str  # the original's, in the blob store
    thumbnails: dict[str, str]  # long side -> path
    width: int
    height: int
    content_type: str
    bytes: int
    seed: int | None
    task_id: str
    model: str | None
    steps: int | None
    prompt: str
    created_at: str
    demo: bool
    per_image: int  # µc

    @property
    def paths(self) -> list[str]:
        """The original's and its thumbnails'."""
        return [self.path, *self.thumbnails.values()]


@dataclass(frozen=True)
class SignedImage:
    """Short-lived URLs of an image and of its thumbnails (by side), and when they stop working."""

    url: str
    thumbnails: dict[str, str]
    expires_at: str


@dataclass(frozen=True)
class ImagesDeleted:
    """The images removed, and how many stored objects (originals and thumbnails) went with them."""

    deleted: list[str]
    objects: int


@dataclass(frozen=True)
class ImagePlan:
    """What an image request will make and cost, before anything is held."""

    model: Model
    prompt: str
    quote: ImageQuote
    extras: dict[str, Any]

    @property
    def size(self) -> str:
        return f"{self.quote.width}x{self.quote.height}"


class Reporting:
    """The task's journal, saying the next step's progress in the same save as each step's record (one write to
    the task and its mirror a step instead of two)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def load(self) -> dict[str, dict[str, Any]]:
        return self.journal.load()

    def record(self, step: str, entry: dict[str, Any]) -> None:
        following = STEPS.index(step) + 1 if step in STEPS and entry.get("status") == "done" else len(STEPS)
        if following < len(STEPS) and isinstance(self.journal, TaskJournal):
            self.journal.record(step, entry, progress=following / len(STEPS), message=SAYS[STEPS[following]])
        else:
            self.journal.record(step, entry)


def _until_cancelled(context: Context, call: Callable[[], T]) -> T:
    """`call` (a provider's drawing, up to AI_TIMEOUT_SECONDS) on a thread of its own, waited for while the task
    is not cancelled: a cancel (or its deadline) ends the wait within CANCEL_POLL_SECONDS, not when the provider
    answers; its images, should they come, are dropped (nothing was delivered: nothing is charged)."""
    done = threading.Event()
    answered: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            answered.append(call())
        except BaseException as error:  # handed to the waiting run, which raises it as its own
            failed.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name="image-call", daemon=True).start()
    while not done.wait(CANCEL_POLL_SECONDS):
        if context.cancelled():
            raise Cancelled()
    if failed:
        raise failed[0]
    return answered[0]


class Cancelled(Exception):
    """The user cancelled before anything was charged: the saga is undone and the task ends cancelled."""


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def folder(uid: str, task_id: str) -> str:
    return f"users/{uid}/images/{task_id}/"


class ImageGeneration:
    """The service: plans and prices requests, runs image tasks (the task flow's Run for `image`), lists and
    deletes a user's images, and sweeps away what crashed tasks left."""

    resumes_spent_hold = True  # settle may take the whole hold: a run resumed after it finds none left, and goes on

    def __init__(self, catalog: LiveCatalog, providers: dict[str, ImageProvider], tools: ImageTools,
                 blobs: BlobStore, credits: Any, notifications: Notifications, clock: Clock, store: TaskStore,
                 journal: Callable[[str, str], Journal], policy: ImagePolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, health: Health | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.catalog, self.providers, self.tools, self.blobs = catalog, providers, tools, blobs
        self.credits, self.notifications, self.clock, self.store = credits, notifications, clock, store
        self.journal = journal
        self.policy = policy or ImagePolicy()
        self.sleep = sleep
        self.health = health or Health()  # each call's outcome and time, by model: the chat's, in the platform
        self.now = now
        self.after_step: Callable[[Task, str], None] | None = None  # a test mode's hook (a crash between steps)
        self.cap_of: Callable[[str], int | None] | None = None  # a user's credit limit per request, if they set one

    # -- pricing ---------------------------------------------------------------------------------------------

    def model(self, model_id: str | None) -> Model:
        """The named image model; with none named, the first on offer whose circuit breaker is not open (a model
        failing now is passed over, as a chat call's is), or the first of all when every one's is."""
        if model_id is None:
            now = self.now()
            working = (m for m in self.catalog.models("image") if self.health.breaker(m.id).state(now) != "open")
            chosen = next(working, None)
            if chosen is not None:
                return chosen
        return self.catalog.get(model_id, "image")

    def quote(self, model_id: str | None, size: str | None = None, steps: int | None = None, n: int = 1,
              quality: str | None = None) -> tuple[Model, ImageQuote]:
        model = self.model(model_id)
        width, height = parse_size(size) if size is not None else default_size(model)
        return model, quote_images(model, width, height, steps_for(model, steps, quality), n)

    def plan(self, request: TaskRequest) -> ImagePlan:
        """An image task's request, checked whole (model, size, steps, n, the extras the model allows, the prompt)
        and priced; InvalidImageRequest or UnknownModel say what is wrong."""
        if request.kind != "image":
            raise InvalidTask(f"not an image request: {request.kind}")
        given = request.input if isinstance(request.input, dict) else {}
        if isinstance(request.input, dict) and not isinstance(given.get("prompt"), str):
            raise InvalidImageRequest("an image task needs input.prompt (or the prompt as the input itself)",
                                      param="prompt")
        prompt = check_prompt(request.input if isinstance(request.input, str) else given.get("prompt"))
        size, n, steps = given.get("size"), given.get("n", 1), given.get("steps")
        if size is not None and not isinstance(size, str):
            raise InvalidImageRequest("size must be WIDTHxHEIGHT such as 1024x1024", param="size")
        model, quote = self.quote(request.model, size, steps, n)
        asked = {INPUT[name]: given[name] for name in ("seed", "negativePrompt") if given.get(name) is not None}
        extras = provider_extras(model, quote.steps, asked)
        return ImagePlan(model, prompt, quote, extras)

    def price(self, uid: str, request: TaskRequest) -> tuple[str | None, int]:
        """The task flow's quote for an image task: its model and its price, which is its hold; refused above the
        user's own limit per request (their preferences), as a chat call is."""
        plan = self.plan(request)
        cap = self.cap_of(uid) if self.cap_of is not None else None
        if cap is not None and plan.quote.total > cap:
            raise OverRequestLimit(f"these images cost {format_credits(plan.quote.total)} credits, above your limit "
                                   f"of {format_credits(cap)} per request", estimate=plan.quote.total, limit=cap)
        return plan.model.id, plan.quote.total

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self, context: Context, resume: object | None = None) -> RunOutcome:
        task = context.task
        journal = self.journal(task.uid, task.id)
        fresh: dict[int, bytes] = {}  # this run's bytes, by index: read back from the store only after a crash
        saga = self._saga(context, fresh)

        said: list[str] = []

        def progress(n: int, total: int, name: str) -> None:
            if not said:  # the first step this run takes; each later one is said with the record before it
                said.append(name)
                context.progress(n / total, SAYS[name])

        try:
            outputs = saga.run(Reporting(journal), progress)
        except Cancelled:
            saga.undo(journal, "cancelled")
            return RunOutcome("cancelled", {"reason": "cancelled before anything was charged"})
        except SagaFailed as failed:
            if isinstance(failed.cause, LedgerError):  # the provider's refusal, or an invalid request: as it was
                raise failed.cause from failed
            raise InvalidImage(f"the image task failed at {failed.step}: {failed.reason}") from failed
        return RunOutcome("done", self._result(task, outputs))

    def _saga(self, context: Context, fresh: dict[int, bytes]) -> Saga:
        task = context.task
        uid, task_id = task.uid, task.id
        base = folder(uid, task_id)
        thumbs: dict[int, dict[int, bytes]] = {}  # made while validating, by index

        def step(name: str, work: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
            def guarded(outputs: dict[str, Any]) -> Any:
                if name in UNCHARGED and context.cancelled():
                    raise Cancelled()
                return work(outputs)
            return guarded

        def reserve(_: dict[str, Any]) -> dict[str, Any]:
            if not context.budget.hold:  # nothing charged yet (no step past this one ran): a refund freed it
                raise InvalidTask("the task's hold was released before its images were drawn")
            asked = task.request  # with no model named, the one priced when the task was accepted: its hold's
            plan = self.plan(asked if asked.model or not task.model else replace(asked, model=task.model))
            if task.reserved < plan.quote.total:  # the catalog's price rose since the hold was placed
                raise InvalidImageRequest(f"this request now costs {format_credits(plan.quote.total)} credits, above "
                                          f"the {format_credits(task.reserved)} held for it: ask again",
                                          price=plan.quote.total, held=task.reserved)
            q = plan.quote
            return {"hold": context.budget.hold or task.hold, "model": plan.model.id, "provider": plan.model.provider,
                    "demo": plan.model.demo, "width": q.width, "height": q.height, "steps": q.steps, "n": q.n,
                    "perImage": q.per_image, "price": q.total, "pixelSteps": q.pixel_steps,
                    "promptHash": prompt_hash(plan.prompt), "extras": plan.extras}

        def generate(outputs: dict[str, Any]) -> dict[str, Any]:
            held = outputs["reserve"]
            provider = self.providers.get(held["provider"])
            if provider is None:
                raise ProviderUnavailable(f"no image provider {held['provider']!r} is configured here",
                                          provider=held["provider"])
            images = self._generate(context, provider, held, check_prompt(task.request.text()))
            made = []
            for n, image in enumerate(images):
                fresh[n] = image.data
                self.blobs.put(f"{base}incoming-{n}", image.data, image.content_type,
                               metadata={"taskId": task_id, "stage": "generated"})
                made.append({"index": n, "contentType": image.content_type, "seed": image.seed,
                             "bytes": len(image.data)})
            return {"images": made}

        def unstage(output: dict[str, Any]) -> None:
            for image in output["images"]:
                self.blobs.delete(f"{base}incoming-{image['index']}")

        def validate(outputs: dict[str, Any]) -> dict[str, Any]:
            """Each image's header (type, size, the bomb guard) and then its pixels, decoded whole once: by making
            its thumbnails, kept for the thumbnails step (which makes them again only after a crash)."""
            held = outputs["reserve"]
            kept, dropped = [], []
            for image in outputs["generate"]["images"]:
                n = image["index"]
                try:
                    data = self._bytes(fresh, n, f"{base}incoming-{n}")
                    facts = self.tools.inspect(data, self.policy.limits, decode=False)
                    check_delivered(facts.width, facts.height, held["width"], held["height"])
                    thumbs[n] = self.tools.thumbnails(data, THUMBNAILS)
                except InvalidImage as refused:  # one bad image is not delivered; the others are
                    dropped.append({"index": n, "reason": refused.detail[:200]})
                    continue
                kept.append({"index": n, "format": facts.format, "contentType": facts.content_type,
                             "width": facts.width, "height": facts.height, "bytes": facts.size,
                             "seed": image.get("seed")})
            if not kept:
                reasons = "; ".join(d["reason"] for d in dropped)
                # the provider's failure, not the caller's request: a 502 the SDKs retry, not a 422 to fix
                raise ProviderUnavailable(f"the model delivered nothing usable: {reasons}"[:500],
                                          provider=held["provider"])
            return {"images": kept, "dropped": dropped}

        def store(outputs: dict[str, Any]) -> dict[str, Any]:
            held = outputs["reserve"]
            stored = []
            for image in outputs["validate"]["images"]:
                n = image["index"]
                path = f"{base}{n}.{EXTENSIONS.get(image['contentType'], 'img')}"
                data = fresh.get(n)
                if data is None:
                    staged = self.blobs.get(f"{base}incoming-{n}")
                    if staged is None:  # written, then the staged copy removed, before a crash: stored already
                        if self.blobs.get(path) is None:
                            raise InvalidImage(f"the generated image {n} is gone")
                        stored.append({**image, "path": path})
                        continue
                    data = fresh[n] = staged.data
                self.blobs.put(path, data, image["contentType"], CACHE_CONTROL,
                               self._metadata(held, task_id, image.get("seed")))
                stored.append({**image, "path": path})
            for image in outputs["generate"]["images"]:
                self.blobs.delete(f"{base}incoming-{image['index']}")
            return {"images": stored}

        def unstore(output: dict[str, Any]) -> None:
            for image in output["images"]:
                self.blobs.delete(image["path"])

        def thumbnails(outputs: dict[str, Any]) -> dict[str, Any]:
            held = outputs["reserve"]
            made: dict[str, dict[str, str]] = {}
            for image in outputs["store"]["images"]:
                n = image["index"]
                made_before = thumbs.get(n)
                if made_before is None:  # a run resumed after validate
                    data = fresh.get(n)
                    if data is None:
                        blob = self.blobs.get(image["path"])
                        if blob is None:
                            raise InvalidImage(f"the stored original {image['path']} is gone")
                        data = blob.data
                    made_before = self.tools.thumbnails(data, THUMBNAILS)
                paths = {}
                for side, thumbnail in made_before.items():
                    path = f"{base}{n}-{side}.webp"
                    self.blobs.put(path, thumbnail, "image/webp", CACHE_CONTROL,
                                   self._metadata(held, task_id, image.get("seed")))
                    paths[str(side)] = path
                made[str(n)] = paths
            return {"thumbnails": made}

        def unthumbnail(output: dict[str, Any]) -> None:
            for paths in output["thumbnails"].values():
                for path in paths.values():
                    self.blobs.delete(path)

        def settle(outputs: dict[str, Any]) -> dict[str, Any]:
            if context.cancelled() and not self.committed(task):  # a cancel before the charge: nothing is charged
                raise Cancelled()
            held = outputs["reserve"]
            delivered = len(outputs["store"]["images"])
            amount = held["perImage"] * delivered
            hold = context.budget.hold or held["hold"]  # none left: a resumed run whose capture took it all
            memo = {"model": held["model"], "provider": held["provider"], "images": str(delivered),
                    "asked": str(held["n"]), "size": f"{held['width']}x{held['height']}",
                    "steps": str(held["steps"]), "per_image": str(held["perImage"]), "task": task_id}
            # the task's last charge: it settles the hold and gives the rest back in one entry (a capture that kept
            # the rest held only for the task's end to release it wrote two)
            settled = self.credits.capture(uid, hold, amount, key=f"task:{task_id}:images", memo=memo, closes=True)
            context.budget.take(settled)
            return {"charged": amount, "delivered": delivered, "entry": settled.entry}

        def notify(outputs: dict[str, Any]) -> dict[str, Any]:
            """The user told, with short-lived URLs of the images: a client that speaks only Realtime Database
            gets them here (GET /api/v1/images signs them again later)."""
            thumbs = outputs["thumbnails"]["thumbnails"]
            ids, urls, expires = [], [], None
            for image in outputs["store"]["images"]:
                signed = self.signed(image["path"], thumbs.get(str(image["index"]), {}))
                ids.append(f"{task_id}.{image['index']}")
                urls.append({"id": ids[-1], "url": signed.url, "thumbnails": signed.thumbnails})
                expires = signed.expires_at
            self.notifications.notify(uid, f"images-{task_id}", {
                "kind": "images.ready", "taskId": task_id, "images": ids, "urls": urls, "urlsExpireAt": expires,
                "charged": money(outputs["settle"]["charged"]), "at": iso(self.clock.now())})
            return {"images": ids}

        runs = {"reserve": (reserve, None), "generate": (generate, unstage), "validate": (validate, None),
                "store": (store, unstore), "thumbnails": (thumbnails, unthumbnail), "settle": (settle, None),
                "notify": (notify, None)}
        steps = []
        for name in STEPS:
            work, undo = runs[name]
            steps.append(Step(name, self._after(task, name, step(name, work)), undo))
        return Saga("image", tuple(steps))

    def _after(self, task: Task, name: str, work: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if self.after_step is None:
            return work
        hook = self.after_step

        def run(outputs: dict[str, Any]) -> Any:
            output = work(outputs)
            hook(task, name)  # after the step's effect, before its record: the crash a saga must survive
            return output
        return run

    def _generate(self, context: Context, provider: ImageProvider, held: dict[str, Any], prompt: str) -> list:
        """The provider's images, asked again with backoff while it fails in a way that may pass (5xx, 429,
        timeouts, an unusable reply); its refusal of the request (400) is final at once."""
        delay = self.policy.backoff_seconds
        for attempt in range(1, self.policy.attempts + 1):
            started = self.now()
            try:
                made = _until_cancelled(context, lambda: provider.generate(
                    held["model"], prompt, held["width"], held["height"], held["steps"], held["n"], held["extras"]))
                self.health.record(held["model"], True, self.now() - started, self.now())
                return made
            except ProviderUnavailable as failure:
                self.health.record(held["model"], False, self.now() - started, self.now())
                if attempt == self.policy.attempts or context.cancelled():
                    raise
                context.progress(1 / len(STEPS), f"the model failed ({failure.detail[:80]}); trying again in "
                                 f"{delay:g} s ({attempt + 1} of {self.policy.attempts})")
                self.sleep(delay)
                delay = min(delay * 2, self.policy.backoff_max_seconds)
        raise AssertionError("unreachable")

    def _bytes(self, fresh: dict[int, bytes], n: int, path: str) -> bytes:
        if n in fresh:
            return fresh[n]
        blob = self.blobs.get(path)
        if blob is None:
            raise InvalidImage(f"the generated image {path} is gone")
        fresh[n] = blob.data
        return blob.data

    @staticmethod
    def _metadata(held: dict[str, Any], task_id: str, seed: object) -> dict[str, str]:
        metadata = {"model": held["model"], "promptHash": held["promptHash"], "taskId": task_id,
                    "steps": str(held["steps"])}
        if held.get("demo"):
            metadata["demo"] = "true"
        if isinstance(seed, int):
            metadata["seed"] = str(seed)
        return metadata

    def _result(self, task: Task, outputs: dict[str, Any]) -> dict[str, Any]:
        held = outputs["reserve"]
        thumbs = outputs["thumbnails"]["thumbnails"]
        images = [{"id": f"{task.id}.{image['index']}", "path": image["path"], "contentType": image["contentType"],
                   "width": image["width"], "height": image["height"], "bytes": image["bytes"],
                   "seed": image.get("seed"), "thumbnails": thumbs.get(str(image["index"]), {})}
                  for image in outputs["store"]["images"]]
        return {"images": images, "model": held["model"], "size": f"{held['width']}x{held['height']}",
                "steps": held["steps"], "n": held["n"], "delivered": len(images),
                "charged": money(outputs["settle"]["charged"]), "perImage": money(held["perImage"]),
                "demo": held["demo"]}

    def committed(self, task: Task) -> bool:
        """Whether the task's images were charged (the saga's settle made): its run must go on to its end."""
        return self.credits.used(task.uid, f"task:{task.id}:images")

    def abandon(self, task: Task) -> int:
        """A task that ended otherwise than succeeded (failed for good, cancelled, expired): its folder is
        cleared. Returns how many objects went."""
        if task.state == SUCCEEDED:
            return 0
        return self._clear(folder(task.uid, task.id))

    def _clear(self, prefix: str, keep: frozenset[str] = frozenset()) -> int:
        gone = 0
        for info in self.blobs.list(prefix):
            if info.path not in keep and self.blobs.delete(info.path):
                gone += 1
        return gone

    # -- a user's images -------------------------------------------------------------------------------------

    def images(self, uid: str, limit: int = 20, cursor: str | None = None) -> tuple[list[ShownImage], str | None]:
        """The user's images, newest first: whole tasks at a time, at most `limit` images a page (a task with more
        than `limit` images fills a page by itself); the cursor is the last task's."""
        found: list[ShownImage] = []
        before = cursor
        while True:
            page = self.store.of_user(uid, states=frozenset({SUCCEEDED}), kinds=IMAGES, limit=limit + 1,
                                      before=before)
            for task in page[:limit]:
                shown = self.shown(task)
                if found and len(found) + len(shown) > limit:
                    return found, before
                found.extend(shown)
                before = f"{task.created_at}|{task.id}"
                if len(found) >= limit:
                    return found, before if self._more(uid, before) else None
            if len(page) <= limit:
                return found, None

    def _more(self, uid: str, before: str) -> bool:
        return bool(self.store.of_user(uid, states=frozenset({SUCCEEDED}), kinds=IMAGES, limit=1, before=before))

    @staticmethod
    def shown(task: Task) -> list[ShownImage]:
        """A succeeded task's images that were not deleted, each with its task's facts."""
        result = task.result or {}
        prompt = task.request.text()
        return [ShownImage(image["id"], image["path"], dict(image.get("thumbnails") or {}), image["width"],
                           image["height"], image["contentType"], image["bytes"], image.get("seed"), task.id,
                           result.get("model"), result.get("steps"), prompt, task.created_at,
                           bool(result.get("demo")), result["perImage"]["micros"] if "perImage" in result else 0)
                for image in kept_images(result, task.steps.get("deletedImages"))]

    def delete(self, uid: str, image_id: str) -> ImagesDeleted:
        """Remove one of the user's images (its original and thumbnails) or, by the task id, all of a task's. The
        ledger entry that charged it stays. Another user's image is as unknown as one that never was."""
        task_id, _, index = image_id.partition(".") if isinstance(image_id, str) else ("", "", "")
        task = self.store.get(uid, task_id) if task_id else None
        if task is None or task.request.kind != "image" or task.state != SUCCEEDED:
            raise UnknownTask(f"no image {str(image_id)[:80]!r} of yours", image=str(image_id)[:80])
        images = {image["id"]: image for image in (task.result or {}).get("images", [])}
        deleted = set(task.steps.get("deletedImages", []))
        chosen = [i for i in images if i not in deleted] if not index else [image_id]
        if not chosen or (index and (image_id not in images or image_id in deleted)):
            raise UnknownTask(f"no image {image_id[:80]!r} of yours", image=image_id[:80])
        gone = 0
        for chosen_id in chosen:
            image = images[chosen_id]
            for path in [image["path"], *image.get("thumbnails", {}).values()]:
                gone += bool(self.blobs.delete(path))
        self._note_deleted(uid, task_id, chosen)
        return ImagesDeleted(chosen, gone)

    def _note_deleted(self, uid: str, task_id: str, ids: list[str]) -> None:
        from .tasks import SAVE_TRIES

        for _ in range(SAVE_TRIES):
            task = self.store.get(uid, task_id)
            if task is None:
                return
            deleted = sorted({*task.steps.get("deletedImages", []), *ids})
            if self.store.save(task.changed(iso(self.clock.now()), steps={**task.steps, "deletedImages": deleted})):
                return
        raise LedgerError(f"task {task_id} kept changing while its images were deleted")

    def signed(self, path: str, thumbnails: dict[str, str]) -> SignedImage:
        """Short-lived URLs of an image and its thumbnails (long side -> path)."""
        seconds = self.policy.url_seconds
        return SignedImage(self.blobs.signed_url(path, seconds),
                           {side: self.blobs.signed_url(thumb, seconds) for side, thumb in thumbnails.items()},
                           iso(self.clock.now() + timedelta(seconds=seconds)))

    # -- the orphan sweep ------------------------------------------------------------------------------------

    def sweep(self, limit: int = 10_000) -> Swept:
        """Remove the blobs no image belongs to: those of a task that ended without succeeding (a crash between
        store and settle, an abandon that failed), of a task no store knows, what a succeeded task's run staged,
        and what a user deleted. A task still running is left alone. Idempotent."""
        by_task: dict[tuple[str, str], list[str]] = {}
        for info in sweep_window(self.blobs.list("users/"), limit, random.randrange(1 << 30)):
            parts = info.path.split("/")
            if len(parts) >= 5 and parts[2] == "images":
                by_task.setdefault((parts[1], parts[3]), []).append(info.path)
        removed = kept = 0
        for (uid, task_id), paths in by_task.items():
            try:
                task = self.store.get(uid, task_id)
            except Exception:  # a path no store can look up (not a task id): not the sweep's to judge
                log.warning("sweep: cannot look up task %s of %s", task_id, uid)
                continue
            if task is not None and task.state not in TERMINAL:
                kept += len(paths)
                continue
            wanted: set[str] = set()
            if task is not None and task.state == SUCCEEDED:
                wanted = {path for image in self.shown(task) for path in image.paths}
            for path in paths:
                if path in wanted:
                    kept += 1
                elif self.blobs.delete(path):
                    removed += 1
        if removed:
            log.info("media sweep removed %d orphan objects", removed)
        return Swept(removed, kept)


def start_image_task(tasks: Tasks, images: ImageGeneration, uid: str, task_id: str, raw: dict[str, Any],
                     lender: Budget | None = None) -> Task:
    """What POST /api/v1/images does, for callers inside the platform (an agent's start_image_task tool): a task
    already there is returned as it is; a request the price refuses (unknown model, bad size, above the user's
    own limit, above what is left of the lender: the starting agent's budget) raises before anything is recorded
    or held; otherwise the task flow takes it (classify, price, hold, queue) for `uid`, and only `uid`, its hold
    moved out of the lender's."""
    require_task_id(task_id)
    known = tasks.store.get(uid, task_id)
    if known is not None:
        return known
    _, price = images.price(uid, parse_request(raw, max_reservation=tasks.policy.max_reservation))
    if lender is not None and price > lender.left:
        raise BudgetExhausted(f"these images cost {format_credits(price)} credits but only "
                              f"{format_credits(lender.left)} are left of the agent task's limit (maxCredits counts "
                              "the image tasks it starts): ask for fewer or smaller images", needed=price)
    return tasks.submit(uid, task_id, raw, lender=lender)


class AgentImageTasks:
    """The image tasks an agent task starts (task_runs.ImageTasks): started as the REST route starts them, within
    what the agent has left, and read back to count what they hold or were charged."""

    def __init__(self, tasks: Tasks, images: ImageGeneration) -> None:
        self.tasks, self.images = tasks, images

    def start(self, uid: str, task_id: str, raw: dict[str, Any], *, lender: Budget | None) -> Task:
        return start_image_task(self.tasks, self.images, uid, task_id, raw, lender)

    def get(self, uid: str, task_id: str) -> Task | None:
        return self.tasks.store.get(uid, task_id)
