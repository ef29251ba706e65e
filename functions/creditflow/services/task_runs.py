"""Running one task: what a run may do (progress, stream, check for a cancel) and the runs of each kind."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..domain.agents import AGENTS, AgentLimits, StartedImageTask
from ..domain.catalog import UnknownModel
from ..domain.errors import BudgetExhausted, ContextTooLong, LedgerError, OverRequestLimit
from ..domain.images import InvalidImage
from ..domain.money import money
from ..domain.replies import ChatReply
from ..domain.tasks import NEW_CONVERSATION, InvalidTask, Task, TaskRequest
from ..domain.vision import InvalidImagePart, UnknownUpload
from ..ports import AgentRunner, Messages, Realtime
from .chat import Budget, MeteredChat
from .chat_results import Piece, StreamEnd
from .conversations import Conversations

STREAM_INTERVAL = 0.05  # at most one write to /streams/{uid}/{task} per 50 ms
CANCEL_CHECK_INTERVAL = 0.1
ROLES = frozenset({"system", "user", "assistant"})
TITLE_CHARS = 80  # of a conversation a task starts


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: done (result), stopped (a limit: partial result), waiting (a question for the user) or
    cancelled (stopped at the user's word; what was used is paid)."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    question: str | None = None


class Context(Protocol):
    task: Task
    budget: Budget
    stopped_by: str | None  # "cancelled" or "expired", once `cancelled` said to stop

    def progress(self, fraction: float, message: str) -> None: ...

    def cancelled(self) -> bool: ...

    def stream(self) -> StreamWriter: ...

    def take_back(self, started: Task) -> bool:
        """What a task this one started held out of its budget and did not spend, back in the budget once that
        task has ended (Tasks.take_back); whether that is done."""


class Run(Protocol):
    def run(self, context: Context, resume: object | None = None) -> RunOutcome: ...


class StreamWriter:
    """Token pieces to /streams/{uid}/{task}: ordered keys (000001, 000002, …), batched to at most one write per
    STREAM_INTERVAL, then a final piece with usage and charge."""

    def __init__(self, realtime: Realtime, uid: str, task_id: str, now: Callable[[], float] = time.monotonic) -> None:
        self.realtime, self.path, self.now = realtime, f"/streams/{uid}/{task_id}", now
        self.seq = 0
        self.pending: list[str] = []
        self.last = 0.0

    def add(self, text: str) -> None:
        if text:
            self.pending.append(text)
        if self.pending and self.now() - self.last >= STREAM_INTERVAL:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self._put({"text": "".join(self.pending)})
            self.pending = []
            self.last = self.now()

    def final(self, piece: dict[str, Any]) -> None:
        """The last tokens still pending and the final piece, in one write."""
        pieces = [{"text": "".join(self.pending)}] if self.pending else []
        self.pending = []
        self._put(*pieces, {"final": True, **piece})

    def _put(self, *pieces: dict[str, Any]) -> None:
        keyed = {}
        for piece in pieces:
            self.seq += 1
            keyed[f"{self.seq:06d}"] = piece
        if self.seq == len(pieces):  # a run (a retry, a resume after a restart) starts the stream afresh: an
            self.realtime.set(self.path, keyed)  # earlier attempt's pieces must not outlast its final piece
        elif len(keyed) == 1:
            [(key, piece)] = keyed.items()
            self.realtime.set(f"{self.path}/{key}", piece)
        else:
            self.realtime.update(self.path, keyed)


def title_of(request: TaskRequest) -> str:
    """A conversation's title, from the first words of the turn that starts it."""
    words = " ".join((request.text() or "").split())
    return (words[:TITLE_CHARS - 1] + "…" if len(words) > TITLE_CHARS else words) or "New conversation"


def request_messages(request: TaskRequest) -> Messages:
    """The messages a chat or vision task sends: its input text, an image part for vision, or messages given."""
    given = request.input.get("messages") if isinstance(request.input, dict) else None
    if given is not None:
        if not (isinstance(given, list) and given and all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in given)):
            raise InvalidTask("input.messages must be a list of {role: system|user|assistant, content: text}")
        return [{"role": m["role"], "content": m["content"]} for m in given]
    text = request.text()
    if not text:
        raise InvalidTask("a chat task needs input text (a string, or input.prompt)")
    image = request.input.get("image") if isinstance(request.input, dict) else None
    if image is not None:
        if not isinstance(image, str) or not image.startswith(("data:image/", "https://", "upload:", "image:")):
            raise InvalidTask("input.image must be a data:image/… URL, upload:<id>, image:<taskId>.<n> or an "
                              "https URL")
        return [{"role": "user", "content": [{"type": "text", "text": text},
                                             {"type": "image_url", "image_url": {"url": image}}]}]
    return [{"role": "user", "content": text}]


class ChatRun:
    """A chat (or vision) turn whose tokens go to the task's stream as they arrive, charged from the task's hold;
    with a conversationId, through the conversation's memory. A cancel stops reading the provider: the call pays
    for what was used (at least its input) and the rest of the hold is freed."""

    starting = "waiting for the model"  # the task's message from the start of its run to its first token
    resumes_spent_hold = True  # the reply's charge closes the hold: a run cut after it finds none left

    def __init__(self, chat: MeteredChat, conversations: Conversations) -> None:
        self.chat, self.conversations = chat, conversations

    def run(self, context: Context, resume: object | None = None) -> RunOutcome:
        """The reply is the task's last charge (a turn's memory calls come before it), so its capture closes the
        task's hold: a settle, and the rest back to the balance, in one step."""
        task, budget = context.task, context.budget
        messages = request_messages(task.request)
        key = f"task:{task.id}"
        if not budget.hold:  # an earlier attempt's reply closed the hold, and a crash cut the run after it
            if task.hold is None or not self.chat.charged_before(task.uid, key):
                raise InvalidTask("the task's hold is spent")
            budget.hold, budget.remaining = task.hold, task.reserved  # asked again; its charge replays by its key
        conversation = task.request.conversation_id
        if conversation == NEW_CONVERSATION:  # started by this task (keyed by it: a redelivery finds the same one)
            conversation = self.conversations.start(task.uid, title_of(task.request), key=key).id
        if conversation:
            pieces = self.conversations.stream(task.uid, conversation, messages, key=key,
                                               model=task.model, budget=budget, closes=True)
        else:
            pieces = self.chat.stream(task.uid, messages, key=key, model=task.model, budget=budget, closes=True)
        return self._relay(context, pieces, conversation)

    @staticmethod
    def _relay(context: Context, pieces: Iterator[Piece], conversation: str | None = None) -> RunOutcome:
        writer = context.stream()
        turn = {"conversationId": conversation} if conversation else {}  # where the next turn goes
        said: list[str] = []
        try:
            for piece in pieces:
                if isinstance(piece, StreamEnd):
                    usage = {"promptTokens": piece.prompt_tokens, "completionTokens": piece.completion_tokens}
                    upkeep = piece.memory.charged if piece.memory is not None else 0  # the turn's memory calls
                    final = {"usage": usage,
                             "charged": money(piece.charged + upkeep),  # all the turn took from the task's hold
                             "model": piece.model, "demo": piece.demo, "broken": piece.broken, **turn}
                    writer.final(final)
                    return RunOutcome("done", {"text": "".join(said), **final})
                if context.cancelled():
                    break
                if piece.text:
                    said.append(piece.text)
                    writer.add(piece.text)
                    if len(said) == 1:  # after the first token is out: the client waits for the token, not this
                        context.progress(0.5, "answering")
        except Exception as error:  # the platform's own failure (the stream's writes): the reply does not reach
            with contextlib.suppress(Exception):  # the user, so the stream is told why, and charges nothing
                pieces.throw(error)  # type: ignore[attr-defined]
            raise
        finally:
            pieces.close()  # type: ignore[attr-defined]  # a cancel: the relay settles what was used
        charged = money(context.budget.captured)  # what the turn took from the hold, its cut reply's settle too
        writer.final({context.stopped_by or "cancelled": True, "charged": charged, **turn})
        return RunOutcome("cancelled", {"text": "".join(said), "charged": charged, **turn})  # the words paid for


RECALLED_MESSAGES = 200  # the latest of each conversation the recall tool reads (Firestore bills every one read)


class AgentContextOfTask:
    """What an agent task may do, all of it the owner's: model calls metered against the task's hold (keyed by
    task, node and step; a call already made answers from the task's record, and a capture already made is not
    made again), progress, cancel, and the owner's own conversation memory."""

    def __init__(self, context: Context, chat: MeteredChat, conversations: Conversations,
                 record: Callable[[str, dict[str, Any]], None], recorded: Callable[[], dict[str, Any]],
                 start_image: ImageTasks | None = None) -> None:
        self.context, self.chat, self.conversations = context, chat, conversations
        self.record, self.recorded = record, recorded
        self.start_image = start_image
        self.task_id, self.uid = context.task.id, context.task.uid

    def _count_images(self) -> None:
        """The task's budget lends what the image tasks it started hold, or were charged once they ended: its
        maxCredits bounds them and its own calls together (read afresh, so a resumed run counts them too, and an
        image task that ended cheaper gives the rest back). One whose hold was split from the task's own counts
        nothing here: its hold left the task's; once it has ended, what it did not spend is taken back into the
        task's hold (once: the task records it, and an ended image is not read again)."""
        budget = self.context.budget
        if budget is None or self.start_image is None:  # no budget: a caller outside any task (tests)
            return
        lent = 0
        recorded = dict(self.recorded())  # as it is now: a take-back is recorded in it
        for key, started in recorded.items():
            back = key.replace(":image:", ":back:", 1)  # the record that its unspent part was taken back
            if key.startswith(f"task:{self.task_id}:image:") and back not in recorded:
                image = self.start_image.get(self.uid, str(started["taskId"]))
                if image is not None and not image.steps.get("splitFrom"):
                    lent += image.charged if image.terminal else max(image.reserved, image.charged)
                elif image is not None and self.context.take_back(image):
                    self.record(back, {"taskId": image.id})
        budget.lent = lent

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        key = f"task:{self.task_id}:{node}:{step}"
        done = self.recorded().get(key)
        if done is not None:
            return ChatReply(**done)
        self._count_images()
        result = self.chat.chat(self.uid, messages, key=key, model=self.context.task.model, max_tokens=max_tokens,
                                options={"tools": tools} if tools else None, budget=self.context.budget)
        reply = ChatReply(result.text, result.model, result.prompt_tokens, result.completion_tokens,
                          result.finish_reason, result.tool_calls)
        self.record(key, {"text": reply.text, "model": reply.model, "prompt_tokens": reply.prompt_tokens,
                          "completion_tokens": reply.completion_tokens, "finish_reason": reply.finish_reason,
                          "tool_calls": reply.tool_calls})
        return reply

    def progress(self, fraction: float, message: str) -> None:
        self.context.progress(fraction, message)

    def cancelled(self) -> bool:
        return self.context.cancelled()

    def recall(self, query: str, limit: int = 5) -> list[str]:
        """The owner's own conversations, latest first, the passages that share most words with the query."""
        words = {w for w in query.lower().split() if len(w) > 2}
        found: list[tuple[int, str]] = []
        for conversation in self.conversations.list(self.uid, 20, None)[0]:
            for message in self.conversations.page_of_messages(self.uid, conversation.id, RECALLED_MESSAGES)[0]:
                shared = len(words & set(message.content.lower().split()))
                if shared:
                    found.append((shared, message.content[:1000]))
        return [text for _, text in sorted(found, key=lambda hit: -hit[0])[:limit]]

    def document(self, reference: str) -> str:
        """A document attached to the task's own input (`input.documents`: {reference: text}); uploads arrive with
        the media issue. Another task's or user's documents are never reachable from here."""
        documents = self.context.task.request.input.get("documents") if isinstance(
            self.context.task.request.input, dict) else None
        if isinstance(documents, dict) and isinstance(documents.get(reference), str):
            return str(documents[reference])
        raise LookupError(f"no document {reference!r}")

    def start_image_task(self, prompt: str, *, size: str | None, n: int, call: str) -> StartedImageTask:
        """An image task of this task's owner (the uid is the context's, never an argument), through the flow the
        REST route uses, refused when its price is above what is left of this task's limit. Its id is derived from
        this task and the call, so a resumed run gets the same task; it is recorded before it is started, so that
        the budget counts it from then on (a record whose task was never made counts nothing)."""
        if self.start_image is None:
            raise LookupError("image generation is not available on this platform")
        task_id = image_task_id(self.task_id, call)
        raw = {"kind": "image", "input": {"prompt": prompt, "n": n, **({"size": size} if size else {})}}
        key = f"task:{self.task_id}:image:{call}"
        if key not in self.recorded():
            self.record(key, {"taskId": task_id})
        self._count_images()
        try:
            started = self.start_image.start(self.uid, task_id, raw, lender=self.context.budget)
        except LedgerError as refused:  # refused before anything was recorded or held
            raise LookupError(refused.detail) from None
        self._count_images()
        if started.error:
            raise LookupError(str(started.error.get("detail") or started.error.get("title")))
        return StartedImageTask(started.id, started.state, started.reserved, started.estimate or 0)


    def look(self, image: str, question: str, call: str) -> str:
        """A vision model's answer about one of the owner's images (upload:<id>, image:<taskId>.<n> or a data: URL),
        charged from this task's budget and keyed by this task and the call: a resumed run that looks again gets
        the answer recorded, not a second charge. LookupError when the image cannot be read or no model can, or
        the look would pass the task's credit limit (or the user's per-request cap)."""
        key = f"task:{self.task_id}:look:{call}"
        done = self.recorded().get(key)
        if done is not None:
            return str(done["text"])
        messages = [{"role": "user", "content": [{"type": "text", "text": question},
                                                 {"type": "image_url", "image_url": {"url": image}}]}]
        self._count_images()
        try:
            result = self.chat.chat(self.uid, messages, key=key, budget=self.context.budget)
        except (UnknownModel, InvalidImagePart, UnknownUpload, InvalidImage) as refused:
            raise LookupError(refused.detail) from None
        except (BudgetExhausted, OverRequestLimit, ContextTooLong) as refused:  # refused before anything was held:
            raise LookupError(refused.detail) from None  # the model is told, the task is not failed for it
        self.record(key, {"text": result.text})
        return result.text


class ImageTasks(Protocol):
    """The image tasks an agent task starts, each a task of its own (its own hold, its own financial outcome)."""

    def start(self, uid: str, task_id: str, raw: dict[str, Any], *, lender: Budget | None) -> Task:
        """The task as it is now (started once per id), its hold moved out of the lender's (the agent task's
        budget); LedgerError, nothing held, when its price is above what the lender has left or refused as the
        REST route refuses it."""

    def get(self, uid: str, task_id: str) -> Task | None: ...


def image_task_id(agent_task: str, call: str) -> str:
    """The id of the image task an agent task's tool call starts: the same for the same call, within 64 chars."""
    digest = hashlib.sha256(f"{agent_task}\n{call}".encode()).hexdigest()[:16]
    return f"{agent_task[:40]}-img-{digest}"


class AgentRun:
    """An agent task: a LangGraph graph (behind the AgentRunner port) resumed from its checkpoint on every
    delivery. Its limit is the task's hold: past it the agent stops with its partial result, or (with
    input.approval) waits for the user's answer."""

    def __init__(self, runner: AgentRunner, chat: MeteredChat, conversations: Conversations,
                 record: Callable[[Task, str, dict[str, Any]], None], start_image: ImageTasks | None = None) -> None:
        self.runner, self.chat, self.conversations, self._record = runner, chat, conversations, record
        self.start_image = start_image  # the image tasks its tool starts (None: no image generation here)

    def run(self, context: Context, resume: object | None = None) -> RunOutcome:
        task = context.task
        spec = task.request.input if isinstance(task.request.input, dict) else {}
        # as the classifier chose it; a task accepted before choices were recorded: its input's, or research
        agent = task.agent or spec.get("agent") or AGENTS[0]
        if agent not in AGENTS:
            raise InvalidTask(f"input.agent must be one of {', '.join(AGENTS)}")
        goal = task.request.text()
        if not goal:
            raise InvalidTask("an agent task needs a goal (a string, or input.goal)")
        limits = AgentLimits(approval_to_exceed=spec.get("approval") is True)
        calls: dict[str, dict[str, Any]] = dict(task.steps.get("calls", {}))

        def record(key: str, reply: dict[str, Any]) -> None:
            calls[key] = reply
            self._record(task, key, reply)

        agent_context = AgentContextOfTask(context, self.chat, self.conversations, record, lambda: calls,
                                           self.start_image)
        outcome = self.runner.run(agent_context, agent, goal, limits=limits, resume=resume)
        result = {"text": outcome.result, "partial": outcome.partial, "steps": outcome.steps,
                  "toolCalls": outcome.tool_calls, **({"reason": outcome.reason} if outcome.reason else {}),
                  **({"detail": outcome.detail} if outcome.detail else {})}
        if outcome.status == "waiting":
            return RunOutcome("waiting", {**result, "approveUpTo": outcome.approve_up_to}, outcome.question)
        return RunOutcome(outcome.status, result)
