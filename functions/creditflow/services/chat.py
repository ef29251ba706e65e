"""Metered chat: estimate, hold, call the provider, settle on the provider's reported usage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..domain.catalog import Catalog, Model, UnknownModel
from ..domain.errors import AlreadyAnswered, InvalidQuery, LedgerError, OverRequestLimit, ProviderUnavailable
from ..domain.health import Health
from ..domain.money import format_credits
from ..domain.pricing import Estimate, cost, estimate, estimate_tokens, token_cost
from ..ports import ChatProvider, Preferences, PreferenceStore
from .credits import Credits


@dataclass(frozen=True)
class Call:
    """A call that holds credits: which model, the estimate the hold was sized by, and the hold."""

    uid: str
    key: str
    model: Model
    max_output: int
    guess: Estimate
    hold: dict[str, Any]


class MeteredChat:
    def __init__(self, credits: Credits, catalog: Catalog, providers: dict[str, ChatProvider],
                 health: Health | None = None, now: Callable[[], float] = time.monotonic,
                 preferences: PreferenceStore | None = None) -> None:
        self.credits = credits
        self.catalog = catalog
        self.providers = providers
        self.health = health or Health()
        self.now = now
        self.preferences = preferences

    def preferences_of(self, uid: str | None) -> Preferences:
        return self.preferences.get(uid) if self.preferences is not None and uid is not None else Preferences()

    def route(self, model: str | None, capability: str = "chat", uid: str | None = None) -> list[Model]:
        """The models to try, in order. A named model is the only one. Otherwise the user's preferred model
        first (unless cost-saving is on), then every model that can do the job, cheapest first."""
        if model is not None:
            return [self.catalog.get(model, capability)]
        offered = sorted(self.catalog.models(capability), key=lambda m: (m.output_per_million, m.input_per_million))
        if not offered:
            raise UnknownModel(f"no model for {capability} is configured")
        wanted = self.preferences_of(uid)
        preferred = [m for m in offered if m.id == wanted.preferred_model]
        if preferred and not wanted.cost_saving:
            offered = preferred + [m for m in offered if m.id != wanted.preferred_model]
        return offered

    def _hold(self, uid: str, messages: list[dict[str, str]], key: str, model: str | None,
              max_tokens: int | None, admit: Callable[[int], None] | None = None) -> Call:
        """Price the call and hold its estimate before any provider is contacted: a call the balance cannot
        cover is refused with the shortfall and costs nothing."""
        chosen = self.catalog.get(model, "chat")
        max_out = min(max_tokens or chosen.max_output, chosen.max_output)
        guess = estimate(chosen, [m["content"] for m in messages], max_out)
        if guess.prompt_tokens + max_out > chosen.context_window:
            raise InvalidQuery(f"about {guess.prompt_tokens} prompt tokens plus {max_out} to generate exceed "
                               f"{chosen.id}'s context window of {chosen.context_window}")
        if admit is not None:  # e.g. an API key's own credit limit
            admit(guess.micros)
        cap = self.preferences_of(uid).max_credits_per_request
        if cap is not None and guess.micros > cap:
            raise OverRequestLimit(f"this call may cost up to {format_credits(guess.micros)} credits, above your "
                                   f"limit of {format_credits(cap)} per request", estimate=guess.micros, limit=cap)
        hold = self.credits.reserve(uid, guess.micros, key=f"{key}:hold", target="usage:chat",
                                    memo={"model": chosen.id})
        return Call(uid, key, chosen, max_out, guess, hold)

    def _settle(self, call: Call, text: str, prompt: int | None, completion: int | None,
                why: str | None = None) -> dict[str, Any]:
        """Post the hold for what the call cost: reported usage when there is one, else a local estimate
        flagged for reconciliation; never more than was held."""
        reported = prompt is not None and completion is not None and why is None
        prompt = prompt if reported else call.guess.prompt_tokens
        completion = completion if reported else estimate_tokens([text]) if text else 0
        price = cost(call.model, prompt, completion)  # type: ignore[arg-type]
        if why == "cancelled":  # a cancelled call pays at least its input
            price = max(price, token_cost(call.guess.prompt_tokens, call.model.input_per_million))
        charged = min(price, call.hold["amount"])
        memo = {"model": call.model.id, "provider": call.model.provider, "prompt_tokens": str(prompt),
                "completion_tokens": str(completion), "usage": "reported" if reported else "estimated"}
        if not reported:
            memo["reconcile"] = why or "usage missing"
        elif price > call.hold["amount"]:
            memo["reconcile"] = f"cost {price} above hold"
        settled = self.credits.settle(call.uid, call.hold["hold"], charged, key=f"{call.key}:settle", memo=memo)
        return {"model": call.model.id, "provider": call.model.provider, "demo": call.model.demo,
                "prompt_tokens": prompt, "completion_tokens": completion, "usage_reported": reported,
                "charged": charged, "estimated": call.guess.micros, "reservation": call.hold["hold"],
                "entry": settled["entry"], "replayed": settled["replayed"]}

    def _release(self, call: Call) -> None:
        self.credits.release(call.uid, call.hold["hold"], key=f"{call.key}:release")

    def chat(self, uid: str, messages: list[dict[str, str]], *, key: str, model: str | None = None,
             max_tokens: int | None = None, admit: Callable[[int], None] | None = None) -> dict[str, Any]:
        """One completion paid from the user's credits. Without a named model it is routed, and falls back to
        the next model on a provider failure or an open breaker; each try holds and releases on its own."""
        candidates = self.route(model, uid=uid)
        tried: list[str] = []
        for n, candidate in enumerate(candidates):
            if not self.health.admits(candidate.id, self.now()):
                tried.append(f"{candidate.id}: breaker open")
                continue
            try:
                call = self._hold(uid, messages, f"{key}:{n}" if n else key, candidate.id, max_tokens, admit)
            except LedgerError:
                self.health.untried(candidate.id)
                raise
            if call.hold["replayed"]:  # a retry of a request we have seen
                self.health.untried(candidate.id)
                status = self.credits.hold(uid, call.hold["hold"]).status
                if status == "posted":
                    raise AlreadyAnswered("this request was already answered and charged; see your history",
                                          reservation=call.hold["hold"])
                if status == "voided":  # this model failed last time: go on to the next
                    continue
            started = self.now()
            try:
                reply = self.providers[candidate.provider].complete(candidate.id, messages, call.max_output)
            except ProviderUnavailable as failure:
                self.health.record(candidate.id, False, self.now() - started, self.now())
                self._release(call)
                tried.append(f"{candidate.id}: {failure.detail}")
                continue
            self.health.record(candidate.id, True, self.now() - started, self.now())
            return {"text": reply.text, "finish_reason": reply.finish_reason, "tried": tried,
                    **self._settle(call, reply.text, reply.prompt_tokens, reply.completion_tokens)}
        raise ProviderUnavailable("no model could answer: " + "; ".join(tried), tried=len(tried))

    def stream(self, uid: str, messages: list[dict[str, str]], *, key: str, model: str | None = None,
               max_tokens: int | None = None, admit: Callable[[int], None] | None = None
               ) -> Iterator[dict[str, Any]]:
        """Hold now (refusals raise here, before anything streams), then yield {"delta": text} pieces and a
        last {"done": ...} with the charge. Every way out settles or releases the hold exactly once: a broken
        stream or a missing usage chunk settles on a local estimate, a client that goes away pays at least
        its input, a provider that fails before the first piece costs nothing."""
        chosen = next((m for m in self.route(model, uid=uid) if self.health.admits(m.id, self.now())), None)
        if chosen is None:
            raise ProviderUnavailable("every model that could answer is failing right now; try again shortly")
        self.health.untried(chosen.id)  # streams do not feed the breaker (yet): never hold a trial slot
        call = self._hold(uid, messages, key, chosen.id, max_tokens, admit)
        return self._pieces(call, messages)

    def _pieces(self, call: Call, messages: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
        text: list[str] = []
        prompt = completion = None
        finish = None
        outcome = "cancelled"
        try:
            for piece in self.providers[call.model.provider].stream(call.model.id, messages, call.max_output):
                if piece.text:
                    text.append(piece.text)
                    yield {"delta": piece.text}
                if piece.prompt_tokens is not None:
                    prompt, completion = piece.prompt_tokens, piece.completion_tokens
                finish = piece.finish_reason or finish
            outcome = "complete" if finish is not None else "broken"  # ended without a finish: cut off
        except ProviderUnavailable:
            outcome = "broken" if text else "failed"
            if outcome == "failed":
                self._release(call)
                raise
        finally:
            if outcome == "cancelled":  # the consumer stopped reading: the generator is being closed
                self._settle(call, "".join(text), None, None, why="cancelled")
        result = self._settle(call, "".join(text), prompt, completion,
                              why="stream broke" if outcome == "broken" else None)
        yield {"done": True, "finish_reason": finish, **result}
