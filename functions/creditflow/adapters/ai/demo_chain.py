"""The offline demo as a LangChain chat model, so chains run (and are metered) with no provider configured."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class DemoChatModel(BaseChatModel):
    provider: Any
    model: str
    max_tokens: int

    @property
    def _llm_type(self) -> str:
        return "creditflow-demo"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        sent = [{"role": ROLES.get(m.type, "user"), "content": m.content} for m in messages]
        reply = self.provider.complete(self.model, sent, self.max_tokens)
        usage = {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens,
                 "total_tokens": reply.prompt_tokens + reply.completion_tokens}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(
            content=reply.text, usage_metadata=usage, response_metadata={"model_name": self.model, "demo": True}))])
