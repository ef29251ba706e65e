"""What a task will cost before it is held: its model, its price and a conversation turn's memory upkeep."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from creditflow.domain.tasks import InvalidTask, TaskRequest
from creditflow.services.task_quotes import TaskQuotes

MEMORY_TOKENS, AGENT_BUDGET, MAX_RESERVATION = 500, 2_000, 10_000


class Chat:
    def __init__(self) -> None:
        self.quoted: list[dict[str, Any]] = []

    def resolved(self, uid: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return messages

    def quote(self, uid: str, messages: list[dict[str, Any]], model: str | None, more_prompt: int = 0,
              within_limit: bool = False) -> Any:
        self.quoted.append({"messages": messages, "model": model, "more_prompt": more_prompt,
                            "within_limit": within_limit})
        return SimpleNamespace(id=model or "default"), SimpleNamespace(micros=100)


def quotes(images: Any = None) -> tuple[TaskQuotes, Chat]:
    chat = Chat()
    conversations = SimpleNamespace(upkeep=lambda uid, messages, model: 40)
    return TaskQuotes(chat, conversations, images, MEMORY_TOKENS, AGENT_BUDGET,  # type: ignore[arg-type]
                      MAX_RESERVATION), chat


def test_a_turn_in_a_conversation_is_quoted_with_room_for_its_memory_and_its_upkeep() -> None:
    quote, chat = quotes()
    assert quote("u", TaskRequest("chat", "hi", model="m")) == ("m", 100, 0)
    assert chat.quoted[-1]["more_prompt"] == 0
    assert quote("u", TaskRequest("chat", "hi", model="m", conversation_id="c1")) == ("m", 100, 40)
    assert chat.quoted[-1]["more_prompt"] == MEMORY_TOKENS
    # the user's own limit per request is asked at the quote, before any hold, as a chat call asks it
    assert all(asked["within_limit"] for asked in chat.quoted)


@pytest.mark.parametrize(("max_credits", "held"), [(None, AGENT_BUDGET), (3_000, 3_000),
                                                     (MAX_RESERVATION + 1, MAX_RESERVATION)])
def test_an_agent_holds_its_limit_or_the_default_budget_never_past_the_largest_hold(max_credits: int | None,
                                                                                    held: int) -> None:
    quote, chat = quotes()
    request = TaskRequest("agent", {"goal": "plan a trip"}, model="m", max_credits=max_credits)
    assert quote("u", request) == ("m", held, 0)
    assert chat.quoted[-1]["messages"] == [{"role": "user", "content": "plan a trip"}]  # its model can take it


def test_an_image_task_is_priced_by_the_image_service_and_refused_where_there_is_none() -> None:
    images = SimpleNamespace(price=lambda uid, request: ("flux", 300))
    assert quotes(images)[0]("u", TaskRequest("image", {"prompt": "a cat"})) == ("flux", 300, 0)
    with pytest.raises(InvalidTask, match="image tasks are not served"):
        quotes()[0]("u", TaskRequest("image", {"prompt": "a cat"}))
    with pytest.raises(InvalidTask, match="video tasks are not served"):
        quotes(images)[0]("u", TaskRequest("video", {"prompt": "a cat"}))
