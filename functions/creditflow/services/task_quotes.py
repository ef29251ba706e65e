"""What a task will cost before it is held: its model and its price, from the chat and image services' own prices
(the classifier's `Quote`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.tasks import InvalidTask, TaskRequest
from .chat import MeteredChat
from .conversations import Conversations
from .images import ImageGeneration
from .task_runs import request_messages


@dataclass(frozen=True)
class TaskQuotes:
    chat: MeteredChat
    conversations: Conversations
    images: ImageGeneration | None
    memory_tokens: int  # the most a conversation's memory adds to a turn's prompt
    agent_budget: int  # µc held for an agent task that names no maxCredits
    max_reservation: int  # µc: the largest hold

    def __call__(self, uid: str, request: TaskRequest) -> tuple[str | None, int, int]:
        """(model id, µc the task's own call needs, µc more it may spend within its limit: a turn's memory upkeep).
        Refusals (a model that cannot serve it, images that do not read, a kind not served) come before any hold."""
        if request.kind in ("chat", "vision"):
            messages = self.chat.resolved(uid, request_messages(request))  # images read and checked before any hold
            history = self.memory_tokens if request.conversation_id else 0  # the most memory sends
            # past the user's limit per request even without its memory, the reply's call would be refused: before
            # any hold, as a chat call is
            model, guess = self.chat.quote(uid, messages, request.model, more_prompt=history, within_limit=True)
            upkeep = self.conversations.upkeep(uid, messages, model.id) if request.conversation_id else 0
            return model.id, guess.micros, upkeep
        if request.kind == "agent":  # a model that cannot chat, or a goal too long for it, before its budget is held
            self.chat.quote(uid, [{"role": "user", "content": request.text()}], request.model)
            return request.model, min(request.max_credits or self.agent_budget, self.max_reservation), 0
        if request.kind == "image" and self.images is not None:
            return *self.images.price(uid, request), 0
        raise InvalidTask(f"{request.kind} tasks are not served yet on this platform")
