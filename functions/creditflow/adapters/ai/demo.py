"""The offline `demo` provider: deterministic text and token counts, labelled as demo in every reply."""

from __future__ import annotations

import hashlib

from ...domain.pricing import estimate_tokens
from ...ports import ChatReply

WORDS = ("credits", "ledger", "signed", "merkle", "reserve", "settle", "stream", "model", "token", "demo")


class DemoProvider:
    name = "demo"

    def complete(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> ChatReply:
        digest = hashlib.sha256("\n".join(m.get("content", "") for m in messages).encode()).digest()
        count = min(max_tokens, 8 + digest[0] % 24)
        words = " ".join(WORDS[b % len(WORDS)] for b in digest[:count])
        text = f"[demo reply, not a real model] {words}"
        return ChatReply(text=text, model=model, prompt_tokens=estimate_tokens([m.get("content", "")
                                                                                 for m in messages]),
                         completion_tokens=min(max_tokens, count + 6), finish_reason="stop")
