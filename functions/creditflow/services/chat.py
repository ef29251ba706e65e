"""Metered chat: estimate, hold, call the provider, settle on the provider's reported usage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..domain.catalog import Catalog, Model, UnknownModel
from ..domain.errors import AlreadyAnswered, InvalidQuery, LedgerError, OverRequestLimit, ProviderUnavailable
from ..domain.health import Health
from ..domain.money import format_credits
from ..domain.pricing import Estimate, cost, estimate, estimate_tokens, message_texts, prompt_tokens, token_cost
from ..ports import ChatProvider, Messages, Preferences, PreferenceStore
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
    options: dict[str, Any] | None = None


def capability_of(messages: Messages) -> str:
    """A request with image parts needs a vision model; any other needs chat."""
    return "vision" if message_texts(messages)[1] else "chat"


def reply_tokens(text: str, tool_calls: list[dict[str, Any]] | None) -> int:
    """A local estimate of what a reply cost, for when the provider did not say."""
    said = [text] + ([json.dumps(tool_calls)] if tool_calls else [])
    return estimate_tokens(said) if text or tool_calls else 0


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

    def _hold(self, uid: str, messages: Messages, key: str, model: str | None, max_tokens: int | None,
              admit: Callable[[int], None] | None = None, options: dict[str, Any] | None = None) -> Call:
        """Price a completion and hold its estimate before any provider is contacted."""
        capability = capability_of(messages)
        chosen = self.catalog.get(model, capability)
        max_out = min(max_tokens or chosen.max_output, chosen.max_output)
        return self._reserve(uid, chosen, prompt_tokens(messages, options), max_out, key, admit, options,
                             f"usage:{capability}")

    def _reserve(self, uid: str, chosen: Model, prompt: int, max_out: int, key: str,
                 admit: Callable[[int], None] | None, options: dict[str, Any] | None, target: str) -> Call:
        """Hold what a call may cost: a call the balance, the key's limit or the user's per-request cap cannot
        cover is refused here, with the shortfall, and costs nothing."""
        guess = estimate(chosen, prompt, max_out)
        if guess.prompt_tokens + max_out > chosen.context_window:
            raise InvalidQuery(f"about {guess.prompt_tokens} prompt tokens plus {max_out} to generate exceed "
                               f"{chosen.id}'s context window of {chosen.context_window}")
        if admit is not None:  # e.g. an API key's own credit limit
            admit(guess.micros)
        cap = self.preferences_of(uid).max_credits_per_request
        if cap is not None and guess.micros > cap:
            raise OverRequestLimit(f"this call may cost up to {format_credits(guess.micros)} credits, above your "
                                   f"limit of {format_credits(cap)} per request", estimate=guess.micros, limit=cap)
        hold = self.credits.reserve(uid, guess.micros, key=f"{key}:hold", target=target, memo={"model": chosen.id})
        return Call(uid, key, chosen, max_out, guess, hold, options)

    def _replayed(self, call: Call) -> str:
        """What became of an earlier request with this key: a posted one is refused (it was answered and
        charged), a voided one failed and the caller may go on, a pending one is still running."""
        self.health.untried(call.model.id)
        status = self.credits.hold(call.uid, call.hold["hold"]).status
        if status == "posted":
            raise AlreadyAnswered("this request was already answered and charged; see your history",
                                  reservation=call.hold["hold"])
        return status

    def _settle(self, call: Call, text: str, prompt: int | None, completion: int | None,
                why: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Post the hold for what the call cost: reported usage when there is one, else a local estimate
        flagged for reconciliation; never more than was held."""
        reported = prompt is not None and completion is not None and why is None
        prompt = prompt if reported else call.guess.prompt_tokens
        completion = completion if reported else reply_tokens(text, tool_calls)
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

    def chat(self, uid: str, messages: Messages, *, key: str, model: str | None = None,
             max_tokens: int | None = None, admit: Callable[[int], None] | None = None,
             options: dict[str, Any] | None = None) -> dict[str, Any]:
        """One completion paid from the user's credits. Without a named model it is routed, and falls back to
        the next model on a provider failure or an open breaker; each try holds and releases on its own."""
        candidates = self.route(model, capability_of(messages), uid=uid)
        tried: list[str] = []
        for n, candidate in enumerate(candidates):
            if not self.health.admits(candidate.id, self.now()):
                tried.append(f"{candidate.id}: breaker open")
                continue
            try:
                call = self._hold(uid, messages, f"{key}:{n}" if n else key, candidate.id, max_tokens, admit,
                                  options)
            except LedgerError:
                self.health.untried(candidate.id)
                raise
            if call.hold["replayed"] and self._replayed(call) == "voided":  # failed last time: try the next model
                continue
            started = self.now()
            try:
                reply = self.providers[candidate.provider].complete(candidate.id, messages, call.max_output,
                                                                    options)
            except ProviderUnavailable as failure:
                self.health.record(candidate.id, False, self.now() - started, self.now())
                self._release(call)
                tried.append(f"{candidate.id}: {failure.detail}")
                continue
            self.health.record(candidate.id, True, self.now() - started, self.now())
            return {"text": reply.text, "finish_reason": reply.finish_reason, "tried": tried,
                    "tool_calls": reply.tool_calls,
                    **self._settle(call, reply.text, reply.prompt_tokens, reply.completion_tokens,
                                   tool_calls=reply.tool_calls)}
        raise ProviderUnavailable("no model could answer: " + "; ".join(tried), tried=len(tried))

    def embed(self, uid: str, inputs: list[str], *, key: str, model: str | None = None,
              admit: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Embeddings paid from the user's credits: held on an estimate of the input, settled on reported usage."""
        chosen = self.catalog.get(model, "embedding")
        call = self._reserve(uid, chosen, estimate_tokens(inputs), 0, key, admit, None, "usage:embedding")
        if call.hold["replayed"] and self._replayed(call) == "voided":
            raise ProviderUnavailable("an earlier request with this key failed; send a new Idempotency-Key")
        started = self.now()
        try:
            out = self.providers[chosen.provider].embed(chosen.id, inputs)
        except ProviderUnavailable:
            self.health.record(chosen.id, False, self.now() - started, self.now())
            self._release(call)
            raise
        self.health.record(chosen.id, True, self.now() - started, self.now())
        return {"vectors": out.vectors,
                **self._settle(call, "", out.prompt_tokens, 0 if out.prompt_tokens is not None else None)}

    def stream(self, uid: str, messages: Messages, *, key: str, model: str | None = None,
               max_tokens: int | None = None, admit: Callable[[int], None] | None = None,
               options: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Hold now (refusals raise here, before anything streams), then yield {"delta": text} pieces and a
        last {"done": ...} with the charge. Every way out settles or releases the hold exactly once: a broken
        stream or a missing usage chunk settles on a local estimate, a client that goes away pays at least
        its input, a provider that fails before the first piece costs nothing."""
        routed = self.route(model, capability_of(messages), uid=uid)
        chosen = next((m for m in routed if self.health.admits(m.id, self.now())), None)
        if chosen is None:
            raise ProviderUnavailable("every model that could answer is failing right now; try again shortly")
        self.health.untried(chosen.id)  # streams do not feed the breaker (yet): never hold a trial slot
        call = self._hold(uid, messages, key, chosen.id, max_tokens, admit, options)
        return self._pieces(call, messages)

    def _pieces(self, call: Call, messages: Messages) -> Iterator[dict[str, Any]]:
        text: list[str] = []
        calls: list[dict[str, Any]] = []  # tool-call deltas, kept only to estimate a reply without usage
        prompt = completion = None
        finish = None
        outcome = "cancelled"
        try:
            provider = self.providers[call.model.provider]
            for piece in provider.stream(call.model.id, messages, call.max_output, call.options):
                if piece.text or piece.tool_calls:
                    text.append(piece.text)
                    calls.extend(piece.tool_calls or ())
                    yield {"delta": piece.text, **({"tool_calls": piece.tool_calls} if piece.tool_calls else {})}
                if piece.prompt_tokens is not None:
                    prompt, completion = piece.prompt_tokens, piece.completion_tokens
                finish = piece.finish_reason or finish
            outcome = "complete" if finish is not None else "broken"  # ended without a finish: cut off
        except ProviderUnavailable:
            outcome = "broken" if text or calls else "failed"
            if outcome == "failed":
                self._release(call)
                raise
        finally:
            if outcome == "cancelled":  # the consumer stopped reading: the generator is being closed
                self._settle(call, "".join(text), None, None, why="cancelled", tool_calls=calls)
        result = self._settle(call, "".join(text), prompt, completion,
                              why="stream broke" if outcome == "broken" else None, tool_calls=calls)
        yield {"done": True, "finish_reason": finish, **result}
