"""LangChain at the adapter edge: a chain step on a LangChain chat model, answered as a plain ChatReply."""

from __future__ import annotations

from typing import Any

from ...domain.errors import ProviderUnavailable
from ...domain.replies import ChatReply
from ...ports import Messages
from .refusals import REJECTED, rejected

KINDS = {"system": "system", "user": "human", "assistant": "ai"}


def run_step(llm: Any, provider: str, messages: Messages) -> ChatReply:
    """`messages` through `llm` (langchain-openai's ChatOpenAI, or the demo's model); usage from its
    `usage_metadata`. Whatever the model raises means nothing was used: ProviderRejected when the provider refused
    the request itself (the openai SDK's status errors carry the status), else ProviderUnavailable."""
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.prompts.chat import MessagesPlaceholder

    chain = ChatPromptTemplate.from_messages([MessagesPlaceholder("history")]) | llm
    try:
        answer = chain.invoke({"history": [(KINDS.get(m["role"], "human"), m["content"]) for m in messages]})
    except Exception as failure:
        status = getattr(failure, "status_code", None)
        if status in REJECTED:
            raise rejected(provider, status, getattr(failure, "body", None)) from failure
        raise ProviderUnavailable(f"{provider} failed in a chain: {type(failure).__name__}",
                                  provider=provider) from failure
    usage = getattr(answer, "usage_metadata", None) or {}
    text = answer.content if isinstance(answer.content, str) else str(answer.content)
    return ChatReply(text=text, model=str(answer.response_metadata.get("model_name", "")),
                     prompt_tokens=usage.get("input_tokens"), completion_tokens=usage.get("output_tokens"),
                     finish_reason=answer.response_metadata.get("finish_reason"))
