"""Metered chat: estimate, hold, call the provider, settle on the provider's reported usage."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ..domain.answers import AnswerCharge
from ..domain.catalog import Catalog, Model, UnknownModel
from ..domain.errors import (
    AlreadyAnswered,
    BudgetExhausted,
    ContextTooLong,
    IdempotencyConflict,
    LedgerError,
    OverRequestLimit,
    ProviderRejected,
    ProviderUnavailable,
    RequestInProgress,
)
from ..domain.health import Health
from ..domain.holds import CALL
from ..domain.money import format_credits
from ..domain.preferences import Preferences
from ..domain.pricing import (
    BYTES_PER_TOKEN_ESTIMATED,
    Estimate,
    cost,
    estimate,
    estimate_tokens,
    message_texts,
    prompt_bound,
    prompt_tokens,
    token_bound,
    token_cost,
)
from ..domain.timefmt import iso, parse_iso
from ..ports import ChatProvider, Messages, PreferenceStore
from .answers import Keeping, KeptAnswers, other_request, streamed
from .catalog import LiveCatalog
from .chat_results import ChainStep, Charge, Completion, Delta, Embedding, Piece, StreamEnd
from .credit_results import Capture, Reservation, Settlement, Split, TakenBack
from .credits import Credits
from .vision import VisionInputs

log = logging.getLogger(__name__)
IN_PROGRESS_WAIT = 2  # s: when a request sent again while its first attempt runs is told to ask once more (one
# cut off by its client ends at its next write, and its hold is released: the next attempt then answers)


class Spend(Protocol):
    """A budget outside the ledger that a request's holds count against (an API key's limit): `admit` each
    hold before it is placed (raising to refuse it), `release` one that was voided uncharged (a model that failed,
    before the request falls back to the next), then `finish` once with what the request was charged."""

    def admit(self, hold: int) -> None: ...

    def release(self, hold: int) -> None:
        """A hold admitted before was voided with nothing charged: its count may serve the request's next hold."""

    def finish(self, charged: int) -> None: ...

    def prolong(self) -> None:
        """The request's hold was extended: count it as long again."""


@dataclass
class Budget:
    """A task's hold that its model calls are charged from, call by call (each capture keeps the rest held in it),
    instead of each call holding credits of its own."""

    uid: str
    hold: str | None  # None once a capture took all of it
    remaining: int  # µc still held
    expires_at: str
    limit: int = 0  # µc: what the task may spend in all (its maxCredits)
    lent: int = 0  # µc: what tasks it started hold or were charged (an agent's image tasks), out of its limit
    kept: int = 0  # µc: set aside for a call still to come (a chat turn's reply, while its memory calls run)
    split_off: int = 0  # µc: what splits moved out of its hold to tasks it started (their own holds now)
    released: int = 0  # µc: what the capture that closed the hold gave back to the balance
    closed: bool = False  # a capture of this run ended the hold's lineage (its last charge, or one that took all)
    task: str | None = None  # the task whose hold it is (the tasks it starts name it)

    @property
    def left(self) -> int:
        """What the task's own calls may still take: its hold, less what the tasks it started count and what is
        kept for a call still to come."""
        return max(0, self.remaining - self.lent - self.kept)

    def lend(self, split: Split) -> None:
        """Part of the hold moved to a task it started (`Credits.split`): the rest is the budget's hold now."""
        self.hold, self.remaining = split.kept, split.kept_amount
        self.split_off += split.amount

    def took_back(self, taken: TakenBack) -> None:
        """What a task it started did not spend, moved back into the hold (`Credits.take_back`)."""
        self.hold, self.remaining = taken.hold, taken.amount
        self.split_off -= taken.taken

    @property
    def captured(self) -> int:
        """What the hold's captures took so far: the limit, less what went to tasks it started, what is still
        held, and what the closing capture gave back."""
        return self.limit - self.split_off - (self.remaining if self.hold else 0) - self.released

    def take(self, captured: Capture) -> None:
        """A capture from the hold: the rest is the budget's hold now, or none is left (the lineage has ended)."""
        self.hold, self.remaining = captured.hold, captured.held
        self.released += captured.released
        self.closed = self.closed or captured.hold is None

    def call_hold(self) -> CallHold:
        if self.hold is None:
            raise BudgetExhausted("the task has nothing left of its limit", needed=0, spent=self.limit,
                                  limit=self.limit)
        return CallHold(self.hold, self.left, self.expires_at)


@dataclass
class CallHold:
    """The hold a call is charged from (a task's: what is left of its budget); a streaming call's hold is replaced
    when it is extended. `replayed`: placed by an earlier request with the same key."""

    id: str
    amount: int  # µc
    expires_at: str
    replayed: bool = False

    @classmethod
    def of(cls, reservation: Reservation) -> CallHold:
        return cls(reservation.hold, reservation.amount, reservation.expires_at, reservation.replayed)


@dataclass(frozen=True)
class Call:
    """A call that holds credits: which model, the estimate the hold was sized by, and the hold."""

    uid: str
    key: str
    model: Model
    max_output: int
    guess: Estimate
    hold: CallHold
    options: dict[str, Any] | None = None
    budget: Budget | None = None  # a task's: charged by capture from it, never released


@dataclass(frozen=True)
class Priced:
    """What a call's reply cost, as its settle posts it."""

    prompt_tokens: int
    completion_tokens: int
    reported: bool  # the provider's usage, not a local estimate
    amount: int  # µc: what the settle takes, at most what is held
    memo: dict[str, str]


@dataclass(frozen=True)
class Replay:
    """An earlier attempt's answer to the request, kept for it; `charged`: what its charge took now (it had not
    been made: a crash came between the answer and its charge), else 0."""

    completion: Completion
    charged: int


def capability_of(messages: Messages) -> str:
    """A request with image parts needs a vision model; any other needs chat."""
    return "vision" if message_texts(messages)[1] else "chat"


def reply_tokens(text: str, tool_calls: list[dict[str, Any]] | None) -> int:
    """A local estimate of what a reply cost, for when the provider did not say."""
    said = [text] + ([json.dumps(tool_calls)] if tool_calls else [])
    return estimate_tokens(said) if text or tool_calls else 0


class MeteredChat:
    def __init__(self, credits: Credits, catalog: Catalog | LiveCatalog, providers: dict[str, ChatProvider],
                 health: Health | None = None, now: Callable[[], float] = time.monotonic,
                 preferences: PreferenceStore | None = None) -> None:
        self.credits = credits
        self.catalog = catalog
        self.providers = providers
        self.health = health or Health()
        self.now = now
        self.preferences = preferences
        self.vision: VisionInputs | None = None  # image parts: read, checked and sized for each model
        self.answers: KeptAnswers | None = None  # answers kept for a request sent again with the client's key

    def given_at(self) -> int:
        """Now, as an answer's `answered_at` (OpenAI's `created`): by the ledger's clock."""
        return int(self.credits.clock.now().timestamp())

    def preferences_of(self, uid: str | None) -> Preferences:
        return self.preferences.get(uid) if self.preferences is not None and uid is not None else Preferences()

    def route(self, model: str | None, capability: str = "chat", uid: str | None = None,
              wanted: Preferences | None = None) -> list[Model]:
        """The models to try, in order. A named model is the only one. Otherwise the user's preferred model
        first (unless cost-saving is on), then every model that can do the job, cheapest first (`wanted`: the
        user's preferences, when the caller has read them)."""
        if model is not None:
            return [self.catalog.get(model, capability)]
        offered = sorted(self.catalog.models(capability), key=lambda m: (m.output_per_million, m.input_per_million))
        if not offered:
            raise UnknownModel(f"no model for {capability} is on offer: none is configured, or an admin disabled them")
        wanted = wanted or self.preferences_of(uid)
        preferred = [m for m in offered if m.id == wanted.preferred_model]
        if preferred and not wanted.cost_saving:
            offered = preferred + [m for m in offered if m.id != wanted.preferred_model]
        return offered

    def quote(self, uid: str, messages: Messages, model: str | None = None, max_tokens: int | None = None,
              more_prompt: int = 0, options: dict[str, Any] | None = None,
              within_limit: bool = False) -> tuple[Model, Estimate]:
        """What a call would hold, before anything is held: the first routed model and its estimate (with
        `more_prompt` tokens the caller will add, such as a conversation's history, and its `options`). With
        `within_limit`, a call past the user's own limit per request even without `more_prompt` (so surely
        refused when it is made) is refused here (OverRequestLimit)."""
        wanted = self.preferences_of(uid) if within_limit else None
        chosen = self.route(model, capability_of(messages), uid=uid, wanted=wanted)[0]
        prompt, bound = self._measured(messages, options, chosen)
        max_out = _allowance(chosen, prompt, max_tokens)
        _within_context(chosen, prompt, max_out)  # the request alone: the history added is trimmed to fit
        if wanted is not None:
            _within_request_limit(wanted, estimate(chosen, prompt, max_out, bound).micros)
        bound += more_prompt * BYTES_PER_TOKEN_ESTIMATED
        return chosen, estimate(chosen, prompt + more_prompt, max_out, bound)

    def resolved(self, uid: str, messages: Messages) -> Messages:
        """Image parts read and checked, inline (before anything is held: a bad image costs nothing)."""
        if self.vision is None or capability_of(messages) != "vision":
            return messages
        return self.vision.resolve(uid, messages)

    def _sized(self, uid: str, messages: Messages, model: Model) -> Messages:
        if self.vision is None or capability_of(messages) != "vision":
            return messages
        return self.vision.sized(uid, messages, model)

    def _hold(self, uid: str, messages: Messages, key: str, model: str | None, max_tokens: int | None,
              spend: Spend | None = None, options: dict[str, Any] | None = None,
              budget: Budget | None = None) -> Call:
        """Price a completion and hold its estimate before any provider is contacted."""
        capability = capability_of(messages)
        chosen = self.catalog.get(model, capability)
        prompt, bound = self._measured(messages, options, chosen)
        return self._reserve(uid, chosen, prompt, _allowance(chosen, prompt, max_tokens), key, spend,
                             options, f"usage:{capability}", budget, bound)

    def prompt_of(self, messages: Messages, model: Model) -> int:
        """What `messages` would count as prompt tokens for `model`, its images by the model's rule for their size
        (an image not read yet as 1024²)."""
        return self._measured(messages, None, model)[0]

    def _measured(self, messages: Messages, options: dict[str, Any] | None, model: Model) -> tuple[int, int]:
        """The prompt's estimate for `model` and the most it can be (`token_bound`), its texts read once; each
        image counted in both by the model's rule for its size."""
        texts, images = message_texts(messages, options)
        if self.vision is None or not images:
            pictured = images * model.image_tokens
        else:
            pictured = sum(model.tokens_for_image(width, height) for width, height in self.vision.sizes(messages))
        return estimate_tokens(texts) + pictured, token_bound(texts) + pictured

    def _reserve(self, uid: str, chosen: Model, prompt: int, max_out: int, key: str,
                 spend: Spend | None, options: dict[str, Any] | None, target: str,
                 budget: Budget | None = None, bound: int = 0) -> Call:
        """Hold what a call may cost (its prompt at the most it can be, `bound`): a call the balance, the key's
        limit or the user's per-request cap cannot cover is refused here, with the shortfall, and costs nothing."""
        guess = estimate(chosen, prompt, max_out, bound)
        _within_context(chosen, guess.prompt_tokens, max_out)
        _within_request_limit(self.preferences_of(uid), guess.micros)
        if budget is not None:  # within a task's hold: what is left of it must cover the call
            if guess.micros > budget.left:
                raise BudgetExhausted(f"this call may cost up to {format_credits(guess.micros)} credits but the task "
                                      f"has {format_credits(budget.left)} left of its limit",
                                      needed=guess.micros, spent=budget.limit - budget.left, limit=budget.limit)
            return Call(uid, key, chosen, max_out, guess, budget.call_hold(), options, budget)
        if spend is not None:  # e.g. an API key's own credit limit
            try:
                spend.admit(guess.micros)
            except LedgerError:
                if not self.held_before(uid, key):  # a retry's hold is the one placed before: it claims nothing new
                    raise
        hold = self.credits.reserve(uid, guess.micros, key=f"{key}:hold", target=target, memo={"model": chosen.id},
                                    owner=CALL)  # the call's own: only its settle or release closes it
        return Call(uid, key, chosen, max_out, guess, CallHold.of(hold), options)

    def held_before(self, uid: str, key: str) -> bool:
        """Whether a call with this key held credits before (an earlier attempt of the request made it, whatever its
        outcome)."""
        return self.credits.used(uid, f"{key}:hold")

    def charged_before(self, uid: str, key: str) -> bool:
        """Whether a call with this key was charged before: for a task's call, which holds nothing of its own, the
        capture from the task's hold (an earlier attempt of the task made it)."""
        return self.credits.used(uid, f"{key}:settle")

    def _require_failed(self, call: Call) -> None:
        """A retry may go on only if the earlier request with its key failed (its hold voided or lapsed): one
        that was answered and charged is refused, and so is one still running."""
        hold = self.credits.find_hold(call.uid, call.hold.id)
        while hold.replaced_by is not None:  # extended while it streamed: what became of the last one
            hold = self.credits.find_hold(call.uid, hold.replaced_by)
        if hold.status == "settled":
            raise AlreadyAnswered("this request was already answered and charged; see your history",
                                  reservation=call.hold.id)
        if hold.is_live(iso(self.credits.clock.now())):  # answering it again would give two replies for one
            raise RequestInProgress(f"a request with this Idempotency-Key is still running (if it was cut off, its "
                                    f"hold lapses at {hold.expires_at}): wait for it, or send a new key",
                                    reservation=hold.id, retry_after=IN_PROGRESS_WAIT)

    def _settle(self, call: Call, text: str, prompt: int | None, completion: int | None,
                why: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
                closes: bool = False) -> Charge:
        """Post the hold for what the call cost (`_priced`). A task's call that `closes` its budget (the task's
        last charge) gives the rest of the task's hold back in the same step."""
        return self._post(call, self._priced(call, text, prompt, completion, why, tool_calls), closes)

    @staticmethod
    def _priced(call: Call, text: str, prompt: int | None, completion: int | None, why: str | None = None,
                tool_calls: list[dict[str, Any]] | None = None) -> Priced:
        """What the call cost: reported usage when there is one, else a local estimate flagged for
        reconciliation; never more than was held."""
        reported = (prompt is not None and completion is not None and why is None
                    and prompt >= 0 and completion >= 0)  # a provider's negative count is no usage
        prompt = prompt if reported else call.guess.prompt_tokens
        completion = completion if reported else reply_tokens(text, tool_calls)
        price = cost(call.model, prompt, completion)  # type: ignore[arg-type]
        if why == "cancelled":  # a cancelled call pays at least its input
            price = max(price, token_cost(call.guess.prompt_tokens, call.model.input_per_million))
        charged = min(price, call.hold.amount)
        memo = {"model": call.model.id, "provider": call.model.provider, "prompt_tokens": str(prompt),
                "completion_tokens": str(completion), "usage": "reported" if reported else "estimated"}
        if not reported:
            memo["reconcile"] = why or "usage missing"
        elif price > call.hold.amount:
            memo["reconcile"] = f"cost {price} above hold"
        return Priced(prompt, completion, reported, charged, memo)  # type: ignore[arg-type]

    def _post(self, call: Call, priced: Priced, closes: bool = False) -> Charge:
        """The settle (a task's call: the capture) that charges what `_priced` says."""
        if call.budget is not None:  # a task's call: charged from the task's hold, the rest kept for later calls
            budget_hold = call.budget.hold or call.hold.id  # the latest: another call of the task may have captured
            captured = self.credits.capture(call.uid, budget_hold, priced.amount, key=f"{call.key}:settle",
                                            memo=priced.memo, closes=closes, charge_if_lapsed=True)  # delivered
            call.budget.take(captured)
            outcome: Capture | Settlement = captured
            shortfall = captured.shortfall
        else:
            outcome = self.credits.settle(call.uid, call.hold.id, priced.amount, key=f"{call.key}:settle",
                                          memo=priced.memo,
                                          charge_if_lapsed=True)  # delivered: a lapsed hold is no reason to charge 0
            shortfall = outcome.shortfall
        return replace(self._charge(call, priced), charged=outcome.charged, shortfall=shortfall, entry=outcome.entry,
                       replayed=outcome.replayed)

    @staticmethod
    def _charge(call: Call, priced: Priced) -> Charge:
        """The call's charge as priced, before it is posted."""
        return Charge(model=call.model.id, provider=call.model.provider, demo=call.model.demo,
                      prompt_tokens=priced.prompt_tokens, completion_tokens=priced.completion_tokens,
                      usage_reported=priced.reported, charged=priced.amount, shortfall=0,
                      estimated=call.guess.micros, reservation=call.hold.id, entry=None, replayed=False)

    def _keep(self, call: Call, key: str, keeping: Keeping, priced: Priced, completion: Completion) -> None:
        """Keep the answer for replays before its charge is posted (see AnswerCharge)."""
        if self.answers is not None:
            self.answers.keep(call.uid, key, keeping.request, replace(completion, memory=keeping.memory),
                              AnswerCharge(call.hold.id, priced.amount, f"{call.key}:settle", priced.memo))

    def replay(self, uid: str, key: str, request: str) -> Completion | None:
        """The answer kept for this request under `key`, charged (once: see AnswerCharge); None when none is kept;
        a conflict when the key answered another request."""
        replayed = self._replay(uid, key, request)
        return replayed.completion if replayed is not None else None

    def _kept(self, uid: str, key: str, keeping: Keeping | None) -> Replay | None:
        return self._replay(uid, key, keeping.request) if keeping is not None else None

    def _replay(self, uid: str, key: str, request: str) -> Replay | None:
        found = self.answers.replay(uid, key, request) if self.answers is not None else None
        if found is None:
            return None
        answer, charge = found
        if charge is None:  # kept after its charge
            return Replay(answer, 0)
        settled = self.credits.settle(uid, charge.hold, charge.amount, key=charge.key, memo=charge.memo,
                                      charge_if_lapsed=True)
        return Replay(replace(answer, charged=settled.charged, shortfall=settled.shortfall, entry=settled.entry),
                      0 if settled.replayed else settled.charged)

    def _release(self, call: Call) -> None:
        if call.budget is None:  # a task's hold stays with the task: nothing of it was spent
            self.credits.release(call.uid, call.hold.id, key=f"{call.key}:release")

    @staticmethod
    def _given_back(call: Call, spend: Spend | None) -> None:
        """A call's hold was voided uncharged and the request goes on to another model: the key's limit no longer
        counts it (else a fallback would be refused for the failed model's hold and its own together)."""
        if spend is not None and call.budget is None:
            spend.release(call.guess.micros)

    def _refused(self, call: Call) -> None:
        """The provider refused the request itself: nothing is charged, and the model's health learns nothing
        (one user's malformed calls must not open a breaker for everyone)."""
        self.health.untried(call.model.id)
        self._release(call)

    @contextmanager
    def _calling(self, call: Call) -> Iterator[None]:
        """Around one provider call: its outcome feeds the model's health, and a refused or failed call releases
        its hold (the error goes on to the caller)."""
        started = self.now()
        try:
            yield
        except ProviderRejected:
            self._refused(call)
            raise
        except ProviderUnavailable:
            self.health.record(call.model.id, False, self.now() - started, self.now())
            self._release(call)
            raise
        except BaseException:  # anything else (a provider adapter's own error): no answer, so nothing is charged
            self.health.untried(call.model.id)
            self._release(call)
            raise
        self.health.record(call.model.id, True, self.now() - started, self.now())

    def _next_call(self, uid: str, messages: Messages, key: str, rest: Iterator[tuple[int, Model]],
                   tried: list[str], max_tokens: int | None, spend: Spend | None,
                   options: dict[str, Any] | None, budget: Budget | None = None,
                   keeping: Keeping | None = None) -> Call | Replay:
        """Hold for the next routed model whose breaker admits a call (the n-th model's hold has key `key:n`);
        ProviderUnavailable, naming what was tried, when none is left. A model whose estimate is above the
        user's per-request cap is passed over; when that is why none is left, the refusal is OverRequestLimit. A
        hold placed before by an earlier attempt whose answer is kept: that answer (`keeping`)."""
        over: OverRequestLimit | None = None
        resting: list[float] = []  # for each model passed over for its open breaker: when it takes a trial again
        for n, candidate in rest:
            if not self.health.admits(candidate.id, self.now()):
                tried.append(f"{candidate.id}: breaker open")
                resting.append(self.health.reopens_in(candidate.id, self.now()))
                continue
            try:
                call = self._hold(uid, messages, f"{key}:{n}" if n else key, candidate.id, max_tokens, spend,
                                  options, budget)
            except OverRequestLimit as refused:
                self.health.untried(candidate.id)
                tried.append(f"{candidate.id}: {refused.detail}")
                over = refused if over is None or refused.context["estimate"] < over.context["estimate"] else over
                continue
            except LedgerError:
                self.health.untried(candidate.id)
                raise
            if call.hold.replayed:  # a retry: whatever happens next says nothing new about the model
                self.health.untried(candidate.id)
                # an answer is kept before its charge: a settled hold's is there when the hold is seen settled
                try:
                    self._require_failed(call)
                except (AlreadyAnswered, RequestInProgress):  # or still running, or cut off by a crash after it
                    replayed = self._kept(uid, key, keeping)
                    if replayed is None:
                        raise
                    return replayed
                replayed = self._kept(uid, key, keeping)  # answered, cut off before its charge, its hold lapsed
                if replayed is not None:
                    return replayed
                self._given_back(call, spend)  # it failed last time: try the next model
                continue
            return call
        if over is not None:
            raise over
        # every model left was resting (none was called this time): a retry is worth making once one takes a trial
        rests = {"reopens_in": math.ceil(max(1.0, min(resting)))} if resting and len(resting) == len(tried) else {}
        raise ProviderUnavailable("no model could answer: " + ("; ".join(tried) or "none is available"),
                                  tried=len(tried), **rests)

    def chat(self, uid: str, messages: Messages, *, key: str, model: str | None = None,
             max_tokens: int | None = None, spend: Spend | None = None,
             options: dict[str, Any] | None = None, budget: Budget | None = None,
             keep: Callable[[str], None] | None = None, replayable: bool = False,
             keeping: Keeping | None = None) -> Completion:
        """One completion paid from the user's credits. Without a named model it is routed, and falls back to
        the next model on a provider failure or an open breaker; each try holds and releases on its own. `keep`
        is given the reply before it is charged (a conversation stores its turn): a reply it fails to keep reaches
        no one, so its hold is released and the error goes on to the caller. `replayable`: the key is the client's,
        so the answer is kept, and the same request sent again with it gets the same answer (`replayed`), once
        more for nothing; another request with the key is a conflict. `keeping`: kept as it says (a conversation
        turn's)."""
        keeping = keeping or self._keeping(messages, model, max_tokens, options, replayable and budget is None)
        messages = self.resolved(uid, messages)
        rest = iter(enumerate(self.route(model, capability_of(messages), uid=uid)))
        tried: list[str] = []
        charged = 0
        try:
            while True:
                call = self._next_call(uid, messages, key, rest, tried, max_tokens, spend, options, budget, keeping)
                if isinstance(call, Replay):
                    charged = call.charged
                    return call.completion
                try:
                    with self._calling(call):
                        reply = self.providers[call.model.provider].complete(
                            call.model.id, self._sized(call.uid, messages, call.model), call.max_output, options)
                except ProviderUnavailable as failure:  # released: on to the next model
                    self._given_back(call, spend)
                    tried.append(f"{call.model.id}: {failure.detail}")
                    continue
                if keep is not None:
                    try:
                        keep(reply.text)
                    except BaseException:
                        self._release(call)
                        raise
                priced = self._priced(call, reply.text, reply.prompt_tokens, reply.completion_tokens,
                                      tool_calls=reply.tool_calls)
                answer = Completion(**{**vars(self._charge(call, priced)), "answered_at": self.given_at()},
                                    text=reply.text, finish_reason=reply.finish_reason, tool_calls=reply.tool_calls,
                                    tried=tried)  # given now, and kept as given now
                if keeping is not None:
                    self._keep(call, key, keeping, priced, answer)
                charge = self._post(call, priced)
                charged = charge.charged
                return replace(answer, **{**vars(charge), "answered_at": answer.answered_at})
        except IdempotencyConflict as conflict:
            raise other_request() from conflict
        finally:
            if spend is not None:
                spend.finish(charged)

    def _keeping(self, messages: Messages, model: str | None, max_tokens: int | None,
                 options: dict[str, Any] | None, replayable: bool) -> Keeping | None:
        """How the answer is kept for replays, if it is."""
        if not replayable or self.answers is None:
            return None
        return Keeping(self.answers.request(model, messages, max_tokens, options))

    def embed(self, uid: str, inputs: list[str], *, key: str, model: str | None = None,
              spend: Spend | None = None, budget: Budget | None = None) -> Embedding:
        """Embeddings paid from the user's credits: held on an estimate of the input, settled on reported usage
        (with a task's `budget`, charged from the task's hold; BudgetExhausted when what is left cannot cover it)."""
        charged = 0
        try:
            chosen = self.catalog.get(model, "embedding")
            call = self._reserve(uid, chosen, estimate_tokens(inputs), 0, key, spend, None, "usage:embedding",
                                 budget, token_bound(inputs))
            if call.hold.replayed:
                self._require_failed(call)
                raise ProviderUnavailable("an earlier request with this key failed; send a new Idempotency-Key")
            with self._calling(call):
                out = self.providers[chosen.provider].embed(chosen.id, inputs)
            charge = self._settle(call, "", out.prompt_tokens, 0 if out.prompt_tokens is not None else None)
            charged = charge.charged
            return Embedding(**vars(charge), vectors=out.vectors)
        finally:
            if spend is not None:
                spend.finish(charged)

    def run_chain(self, uid: str, messages: Messages, *, key: str, model: str | None = None,
                  max_tokens: int | None = None, budget: Budget | None = None) -> ChainStep:
        """A chain step (run by the provider with LangChain) paid from the user's credits: held on its prompt,
        settled on the usage the chain's model reports, like any call (with a task's `budget`, charged from the
        task's hold; BudgetExhausted when what is left cannot cover it)."""
        chosen = self.catalog.get(model, "chat")
        max_out = min(max_tokens or chosen.max_output, chosen.max_output)
        call = self._reserve(uid, chosen, prompt_tokens(messages), max_out, key, None, None, "usage:chat", budget,
                             prompt_bound(messages))
        if call.hold.replayed:
            self._require_failed(call)
            raise ProviderUnavailable("an earlier request with this key failed; send a new Idempotency-Key")
        with self._calling(call):
            reply = self.providers[chosen.provider].chain(chosen.id, messages, max_out)
        return ChainStep(**vars(self._settle(call, reply.text, reply.prompt_tokens, reply.completion_tokens)),
                         text=reply.text)

    def stream(self, uid: str, messages: Messages, *, key: str, model: str | None = None,
               max_tokens: int | None = None, spend: Spend | None = None,
               options: dict[str, Any] | None = None, budget: Budget | None = None,
               closes: bool = False, replayable: bool = False, keeping: Keeping | None = None) -> Iterator[Piece]:
        """Hold now (refusals raise here, before anything streams), then yield Delta pieces and a last
        StreamEnd with the charge. A model that fails before its first piece is released and the
        next routed model is tried, as for `chat`. Every way out settles or releases each hold exactly once: a
        broken stream or a missing usage chunk settles on a local estimate, a client that goes away pays at
        least its input. Outcomes feed the breaker; a client that goes away says nothing about the model. With a
        task's `budget`, `closes` makes the call's charge the task's last: the rest of its hold goes back then.
        `replayable` and `keeping` as for `chat`: a whole answer without tool calls is kept, and a replay streams it
        again."""
        keeping = keeping or self._keeping(messages, model, max_tokens, options, replayable and budget is None)
        try:
            messages = self.resolved(uid, messages)
            rest = iter(enumerate(self.route(model, capability_of(messages), uid=uid)))
            tried: list[str] = []
            call = self._next_call(uid, messages, key, rest, tried, max_tokens, spend, options, budget, keeping)
        except IdempotencyConflict as conflict:
            if spend is not None:
                spend.finish(0)
            raise other_request() from conflict
        except BaseException:
            if spend is not None:
                spend.finish(0)
            raise
        if not isinstance(call, Replay):
            return self._pieces(call, messages, key, rest, tried, max_tokens, spend, closes, keeping)
        if spend is not None:
            spend.finish(call.charged)
        return streamed(call.completion)

    def _pieces(self, call: Call, messages: Messages, key: str, rest: Iterator[tuple[int, Model]],
                tried: list[str], max_tokens: int | None, spend: Spend | None, closes: bool,
                keeping: Keeping | None = None) -> Iterator[Piece]:
        charged = 0
        try:
            while True:
                relay = Relay(self.given_at)
                started = self.now()
                try:
                    yield from relay.pieces(self.providers[call.model.provider], call,
                                            self._sized(call.uid, messages, call.model),
                                            HoldKeeper(self.credits, call, spend))
                finally:
                    if relay.outcome == "cancelled":  # the consumer stopped reading: the generator is closing
                        self.health.untried(call.model.id)
                        charged = self._settle(call, relay.text, None, None, why="cancelled",
                                               tool_calls=relay.calls, closes=closes).charged
                    elif relay.outcome == "rejected":  # raised on to the caller, before any piece
                        self._refused(call)
                    elif relay.outcome == "errored":  # an error of our own, raised on: nothing is charged
                        self.health.untried(call.model.id)
                        self._release(call)
                self.health.record(call.model.id, relay.outcome == "complete", self.now() - started, self.now())
                if relay.outcome == "failed":  # nothing reached the client: release, and on to the next model
                    self._release(call)
                    self._given_back(call, spend)
                    tried.append(f"{call.model.id}: {relay.failure}")
                    following = self._next_call(call.uid, messages, key, rest, tried, max_tokens, spend,
                                                call.options, call.budget, keeping)
                    if isinstance(following, Replay):  # an earlier attempt's answer, from a model after this one
                        charged = following.charged
                        yield from streamed(following.completion)
                        return
                    call = following
                    continue
                priced = self._priced(call, relay.text, relay.prompt, relay.completion,
                                      why="stream broke" if relay.outcome == "broken" else None, tool_calls=relay.calls)
                if keeping is not None and relay.outcome == "complete" and not relay.calls:
                    self._keep(call, key, keeping, priced, Completion(  # kept with the `created` its first chunk said
                        **{**vars(self._charge(call, priced)), "answered_at": relay.answered_at}, text=relay.text,
                        finish_reason=relay.finish, tried=tried))
                charge = self._post(call, priced, closes)
                charged = charge.charged
                yield StreamEnd(**vars(charge), finish_reason=relay.finish, broken=relay.outcome == "broken",
                                tried=tried)
                return
        finally:
            if spend is not None:
                spend.finish(charged)


class HoldKeeper:
    """Keeps a streaming call's hold alive. Holds time out so that a crashed call frees its credits, but a
    stream still running has not crashed: once half of its hold's time is gone, the hold is extended (a void
    and a new hold for the same amount, in one step), and so is the call's count against its key's limit."""

    def __init__(self, credits: Credits, call: Call, spend: Spend | None) -> None:
        self.credits, self.call, self.spend = credits, call, spend
        self.extended = 0
        self._plan()

    def _plan(self) -> None:
        self.renew_at = parse_iso(self.call.hold.expires_at) - self.credits.policy.reservation_ttl / 2

    def __call__(self) -> None:
        if self.call.budget is not None or self.credits.clock.now() < self.renew_at:
            return  # a task's hold lasts until the task's deadline: the task keeps it
        self.extended += 1
        try:
            kept = self.credits.extend(self.call.uid, self.call.hold.id,
                                       key=f"{self.call.key}:extend:{self.extended}")
        except LedgerError as refused:  # e.g. the account was closed meanwhile: settle within the time left
            log.warning("hold %s of %s could not be extended: %s", self.call.hold.id, self.call.uid,
                        refused.detail)
            self.renew_at = datetime.max.replace(tzinfo=UTC)
            return
        self.call.hold.id, self.call.hold.expires_at = kept.hold, kept.expires_at
        if self.spend is not None:
            self.spend.prolong()
        self._plan()


class Relay:
    """One provider stream passed on piece by piece, remembering what it said and how it ended:
    complete, broken (cut off after some pieces), failed (nothing came), rejected (the provider refused the
    request), errored (an error of our own) or cancelled (the consumer left)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock  # Unix seconds now, for `answered_at`
        self.said: list[str] = []
        self.calls: list[dict[str, Any]] = []  # tool-call deltas, kept only to estimate a reply without usage
        self.prompt: int | None = None
        self.completion: int | None = None
        self.finish: str | None = None
        self.outcome = "cancelled"
        self.failure = ""
        self.answered_at: int | None = None  # when its first piece was passed on (Unix seconds): OpenAI's `created`

    @property
    def text(self) -> str:
        return "".join(self.said)

    def pieces(self, provider: ChatProvider, call: Call, messages: Messages,
               keep: Callable[[], None]) -> Iterator[Delta]:
        try:
            for piece in provider.stream(call.model.id, messages, call.max_output, call.options):
                keep()
                if piece.text or piece.tool_calls:
                    self.said.append(piece.text)
                    self.calls.extend(piece.tool_calls or ())
                    self.answered_at = self.answered_at or self.clock()
                    yield Delta(piece.text, piece.tool_calls or None, answered_at=self.answered_at,
                                model=call.model.id)
                if piece.prompt_tokens is not None:
                    self.prompt, self.completion = piece.prompt_tokens, piece.completion_tokens
                self.finish = piece.finish_reason or self.finish
            if self.finish is not None:
                self.outcome = "complete"
            elif self.said or self.prompt is not None:
                self.outcome = "broken"  # no finish: cut off after some of it
            else:  # a stream that ended without a word: nothing reached the client, so on to the next model
                self.outcome, self.failure = "failed", "the stream ended before it said anything"
        except ProviderRejected:
            self.outcome = "rejected"  # at the start: a provider refuses a request before it answers any of it
            raise
        except ProviderUnavailable as failure:
            if self.finish is not None and self.prompt is not None:  # all of it came, and its usage: only the
                self.outcome = "complete"  # end of the body was lost, and the provider bills what it said
            else:
                self.outcome = "broken" if self.said else "failed"
                self.failure = failure.detail
        except Exception:  # not the provider's failure (an adapter's own error): released, and raised on
            self.outcome = "errored"
            raise


def _allowance(model: Model, prompt: int, max_tokens: int | None) -> int:
    """What a reply may write: `max_tokens` when the caller set it (within the model's most), else the model's most
    within the room the prompt leaves in its window, as OpenAI does (only a prompt that leaves none is refused)."""
    if max_tokens is not None:
        return min(max_tokens, model.max_output)
    return max(1, min(model.max_output, model.context_window - prompt))


def _within_context(model: Model, prompt: int, max_out: int) -> None:
    if prompt + max_out > model.context_window:
        raise ContextTooLong(f"about {prompt} prompt tokens plus {max_out} to generate exceed {model.id}'s context "
                             f"window of {model.context_window}")


def _within_request_limit(wanted: Preferences, micros: int) -> None:
    """Refuse (OverRequestLimit) a call that may cost more than the user's own limit per request."""
    cap = wanted.max_credits_per_request
    if cap is not None and micros > cap:
        raise OverRequestLimit(f"this call may cost up to {format_credits(micros)} credits, above your limit of "
                               f"{format_credits(cap)} per request", estimate=micros, limit=cap)
