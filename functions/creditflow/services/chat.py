"""Metered chat: estimate, hold, call the provider, settle on the provider's reported usage."""

from __future__ import annotations

from typing import Any

from ..domain.catalog import Catalog
from ..domain.errors import InvalidQuery, ProviderUnavailable
from ..domain.pricing import cost, estimate, estimate_tokens
from ..ports import ChatProvider
from .credits import Credits


class MeteredChat:
    def __init__(self, credits: Credits, catalog: Catalog, providers: dict[str, ChatProvider]) -> None:
        self.credits = credits
        self.catalog = catalog
        self.providers = providers

    def chat(self, uid: str, messages: list[dict[str, str]], *, key: str, model: str | None = None,
             max_tokens: int | None = None) -> dict[str, Any]:
        """One completion paid from the user's credits. The hold is placed before any provider is contacted,
        so a call the balance cannot cover is refused with the shortfall and costs nothing."""
        chosen = self.catalog.get(model, "chat")
        max_out = min(max_tokens or chosen.max_output, chosen.max_output)
        guess = estimate(chosen, [m["content"] for m in messages], max_out)
        if guess.prompt_tokens + max_out > chosen.context_window:
            raise InvalidQuery(f"about {guess.prompt_tokens} prompt tokens plus {max_out} to generate exceed "
                               f"{chosen.id}'s context window of {chosen.context_window}")
        hold = self.credits.reserve(uid, guess.micros, key=f"{key}:hold", target="usage:chat",
                                    memo={"model": chosen.id})
        try:
            reply = self.providers[chosen.provider].complete(chosen.id, messages, max_out)
        except ProviderUnavailable:
            self.credits.release(uid, hold["hold"], key=f"{key}:release")
            raise
        reported = reply.prompt_tokens is not None and reply.completion_tokens is not None
        prompt = reply.prompt_tokens if reported else guess.prompt_tokens
        completion = reply.completion_tokens if reported else estimate_tokens([reply.text])
        price = cost(chosen, prompt, completion)  # type: ignore[arg-type]
        charged = min(price, hold["amount"])
        memo = {"model": chosen.id, "provider": chosen.provider, "prompt_tokens": str(prompt),
                "completion_tokens": str(completion), "usage": "reported" if reported else "estimated"}
        if not reported or price > hold["amount"]:
            memo["reconcile"] = "usage missing" if not reported else f"cost {price} above hold"
        settled = self.credits.settle(uid, hold["hold"], charged, key=f"{key}:settle", memo=memo)
        return {"text": reply.text, "model": chosen.id, "provider": chosen.provider, "demo": chosen.demo,
                "finish_reason": reply.finish_reason, "prompt_tokens": prompt, "completion_tokens": completion,
                "usage_reported": reported, "charged": charged, "estimated": guess.micros,
                "reservation": hold["hold"], "entry": settled["entry"], "replayed": settled["replayed"]}
