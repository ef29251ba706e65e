"""The offline `demo` provider: deterministic text and token counts, labelled as demo in every reply."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from ...domain.pricing import estimate_tokens
from ...ports import ChatReply, StreamPiece

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

    def stream(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> Iterator[StreamPiece]:
        reply = self.complete(model, messages, max_tokens)
        words = reply.text.split(" ")
        for n, word in enumerate(words):
            yield StreamPiece(text=word if n == 0 else " " + word)
        yield StreamPiece(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                          finish_reason="stop")
