"""Conversations: persisted per user, and chat with memory (buffer, running summary, vector recall), every
model call on the way (summaries and embeddings included) metered like any other."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from ..domain import memory
from ..domain.catalog import Model
from ..domain.conversations import Conversation
from ..domain.errors import (
    AlreadyAnswered,
    BudgetExhausted,
    ContextTooLong,
    IdempotencyConflict,
    ProviderUnavailable,
    UnknownConversation,
)
from ..domain.idempotency import require_key
from ..domain.ids import keyed_id, new_id
from ..domain.pricing import BYTES_PER_TOKEN_ESTIMATED, estimate, prompt_bound, prompt_tokens
from ..domain.timefmt import iso
from ..domain.vision import text_of
from ..ports import Clock, ConversationStore, Messages
from .answers import Keeping, streamed
from .chat import Budget, MeteredChat, capability_of
from .chat_results import ChainStep, Completion, MemoryUse, Piece, StreamEnd

SUMMARISE = ("You keep the memory of a conversation between a user and an assistant. Write a new summary that "
             "merges the previous summary with the new messages: keep facts, names, numbers, decisions and open "
             "questions; drop pleasantries. Answer with the summary only, in at most {words} words.")
MAX_CONVERSATIONS_PAGE = 100
Stored = list[memory.StoredMessage]  # named here: inside Conversations, `list` is its method
FRAMING_TOKENS = 64  # the summary and recall messages' own headings and chat framing
MEMORY_WINDOW = 1000  # the latest messages a turn reads (buffer, summary, recall): a turn costs the same at any age


@dataclass(frozen=True)
class Context:
    """What goes to the model for one turn, and what memory did to build it (for the response)."""

    messages: Messages
    buffered: int
    summarised: int
    recalled: int
    charged: int  # µc spent on summaries and embeddings for this turn


class Conversations:
    def __init__(self, chat: MeteredChat, store: ConversationStore, clock: Clock, context_tokens: int) -> None:
        self.metered = chat
        self.store = store
        self.clock = clock
        self.context_tokens = context_tokens  # history never takes more than this, whatever the model's window

    def start(self, uid: str, title: str, key: str | None = None) -> Conversation:
        """A new conversation; with an idempotency key, a retry returns the one the first request made."""
        now = iso(self.clock.now())
        made = new_id("conv") if key is None else keyed_id("conv", uid, require_key(key))
        conversation = Conversation(id=made, uid=uid, title=title, created_at=now, updated_at=now)
        if self.store.create(conversation):
            return conversation
        earlier = self.get(uid, made)
        if earlier.title != title:
            raise IdempotencyConflict("this Idempotency-Key started a conversation with another title",
                                      field="title")
        return earlier

    def get(self, uid: str, conversation_id: str) -> Conversation:
        found = self.store.get(uid, conversation_id)
        if found is None:
            raise UnknownConversation(f"no conversation {conversation_id!r} of yours")
        return found

    def list(self, uid: str, limit: int, cursor: str | None) -> tuple[list[Conversation], str | None]:
        page = self.store.of_user(uid, min(limit, MAX_CONVERSATIONS_PAGE), cursor)
        more = len(page) == limit
        return page, f"{page[-1].updated_at}|{page[-1].id}" if more and page else None

    def messages(self, uid: str, conversation_id: str) -> Stored:
        self.get(uid, conversation_id)
        return self.store.messages(uid, conversation_id)

    def page_of_messages(self, uid: str, conversation_id: str, limit: int,
                         cursor: str | None = None) -> tuple[Stored, str | None]:
        """A page of messages, oldest first: the latest `limit` ones, or those before the cursor of a later page;
        and the cursor of the page before it, if any."""
        self.get(uid, conversation_id)
        before = int(cursor) if cursor is not None else None
        page = self.store.messages(uid, conversation_id, before=before, limit=limit)
        return page, str(page[0].seq) if len(page) == limit and page[0].seq > 1 else None

    def delete(self, uid: str, conversation_id: str) -> None:
        if not self.store.delete(uid, conversation_id):
            raise UnknownConversation(f"no conversation {conversation_id!r} of yours")

    def chat(self, uid: str, conversation_id: str, new: Messages, *, key: str, model: str | None = None,
             max_tokens: int | None = None, replayable: bool = False) -> Completion:
        """One turn: the context from memory, a metered completion, the turn stored (once per key), then the
        completion charged: a reply that could not be stored (the store failed) is not charged, and one charged is
        in the conversation, unless the user deleted the conversation while the model answered: the reply still
        reaches them and is charged, with nothing left to store it in. (Nothing redelivers this call, and its reply
        reaches the client only if it returns.) `replayable`: the key
        is the client's, and the turn sent again with it gets its answer again (MeteredChat.chat)."""
        request = self._request(conversation_id, new, model, max_tokens, replayable)
        try:
            context = self._context(uid, conversation_id, new, key, model, max_tokens)
            memory = memory_use(context)
            keeping = Keeping(request, memory) if request is not None else None
            return replace(self.metered.chat(uid, context.messages, key=key, model=model, max_tokens=max_tokens,
                                              keep=lambda reply: self._remember(uid, conversation_id, key, new,
                                                                                reply), keeping=keeping),
                           memory=memory)
        except AlreadyAnswered:  # this turn's (stored), or the key's call for another turn (charged)
            kept = self.metered.replay(uid, key, request) if request is not None else None
            if kept is None:
                raise
            return kept

    def _request(self, conversation_id: str, new: Messages, model: str | None, max_tokens: int | None,
                 replayable: bool) -> str | None:
        """The turn's digest when its answer is to be kept for replays: its conversation is part of the request."""
        if not replayable or self.metered.answers is None:
            return None
        return self.metered.answers.request(model, new, max_tokens, None, conversation=conversation_id)

    def stream(self, uid: str, conversation_id: str, new: Messages, *, key: str, model: str | None = None,
               max_tokens: int | None = None, budget: Budget | None = None, closes: bool = False,
               replayable: bool = False) -> Iterator[Piece]:
        """As `chat`, streamed; the turn is stored when the reply is complete (a cut-off reply is charged as
        the chat service says, and not remembered). With a task's `budget`, the reply is charged from it, and so are
        the turn's summaries and embeddings, within what the reply leaves of it (see `_context`); they come before
        the reply, so a reply that `closes` the budget is the turn's last charge. `replayable` as for `chat` (a
        task's turn is answered from its task instead)."""
        request = self._request(conversation_id, new, model, max_tokens, replayable and budget is None)
        try:
            context = self._context(uid, conversation_id, new, key, model, max_tokens, budget)
            pieces = self.metered.stream(uid, context.messages, key=key, model=model, max_tokens=max_tokens,
                                         budget=budget, closes=closes, keeping=Keeping(
                                             request, memory_use(context)) if request is not None else None)
        except AlreadyAnswered:  # as for `chat`
            kept = self.metered.replay(uid, key, request) if request is not None else None
            if kept is None:
                raise
            return streamed(kept)
        return self._remembering(uid, conversation_id, key, new, pieces, context)

    def _remembering(self, uid: str, conversation_id: str, key: str, new: Messages,
                     pieces: Iterator[Piece], context: Context) -> Iterator[Piece]:
        """The pieces, the turn stored once its reply is whole (a replay's too: a crash may have come between an
        answer kept and its turn stored)."""
        said: list[str] = []
        try:
            for piece in pieces:
                if isinstance(piece, StreamEnd):
                    piece = replace(piece, memory=memory_use(context))
                    if piece.finish_reason is not None:
                        self._remember(uid, conversation_id, key, new, "".join(said))
                else:
                    said.append(piece.text)
                try:
                    yield piece
                except GeneratorExit:
                    raise
                except Exception as error:  # the consumer's own failure: passed on, so the stream charges nothing
                    pieces.throw(error)  # type: ignore[attr-defined]
                    raise
        finally:
            pieces.close()  # type: ignore[attr-defined]

    def _remember(self, uid: str, conversation_id: str, key: str, new: Messages, reply: str) -> None:
        turn = [(m["role"], text_of(m["content"])) for m in new] + [("assistant", reply)]
        self.store.append_turn(uid, conversation_id, key, turn, iso(self.clock.now()))

    def _context(self, uid: str, conversation_id: str, new: Messages, key: str, model: str | None,
                 max_tokens: int | None, budget: Budget | None = None) -> Context:
        """The turn's context. With a task's `budget`, memory is upkeep the task's limit pays for after its reply:
        the summary and embedding calls are charged from the task's hold, but never from what the reply may need
        (kept aside, quoted as the task's estimate was: with the whole history's room). One that does not fit is
        not made: the turn goes on with the summary as it was and the history cut to the buffer (a deferred
        summary is made by a later turn, from where the stored one ends; messages left without vectors are
        embedded by a later turn), rather than take the task past its maxCredits or fail a reply it can pay for."""
        if budget is None:
            return self._built(uid, conversation_id, new, key, model, max_tokens, None)
        budget.kept = self.metered.quote(uid, new, model, max_tokens, more_prompt=self.context_tokens)[1].micros
        try:
            return self._built(uid, conversation_id, new, key, model, max_tokens, budget)
        finally:
            budget.kept = 0

    def _built(self, uid: str, conversation_id: str, new: Messages, key: str, model: str | None,
               max_tokens: int | None, budget: Budget | None) -> Context:
        conversation = self.get(uid, conversation_id)
        if self.store.has_turn(uid, conversation_id, key):
            raise AlreadyAnswered("this request was already answered and is in the conversation")
        candidates = self.metered.route(model, capability_of(new), uid=uid)  # an image turn: vision models
        # the history takes at most context_tokens (MEMORY_CONTEXT_TOKENS), beside new messages that may be longer:
        # only the model's window bounds those (counted against the history's share, a long message failed)
        fits = min(m.context_window - min(max_tokens or m.max_output, m.max_output) - self.metered.prompt_of(new, m)
                   for m in candidates) - FRAMING_TOKENS
        if fits < 0:
            raise ContextTooLong("the new messages alone do not fit the context of the model")
        room = min(self.context_tokens, fits)
        recall_on = bool(self.metered.catalog.models("embedding"))
        space = memory.budget(room, recall_on)
        history = self.store.messages(uid, conversation_id, limit=MEMORY_WINDOW)
        charged = 0
        shape = memory.plan(history, conversation.summary_upto, space)
        summary = memory.clip(conversation.summary, space.summary)  # made for a turn that may have had more room
        first = history[0].seq if history else 1
        deferred = False  # a summary the task's limit had no room for: none after it (the summary stays contiguous)
        for lapsed in self._beyond_window(uid, conversation_id, conversation.summary_upto, first):
            summary, cost, deferred = self._summarise(uid, conversation_id, summary, lapsed, space, key,
                                                      self._summariser(uid, candidates), budget)
            charged += cost
            if deferred:
                break
        if shape.unsummarised and not deferred:
            summary, cost, deferred = self._summarise(uid, conversation_id, summary, shape.unsummarised, space, key,
                                                      self._summariser(uid, candidates), budget)
            charged += cost
        recalled: Stored = []
        if recall_on and shape.older:
            recalled, cost = self._recall(uid, conversation_id, history, new, shape.older, space, key, budget)
            charged += cost
        messages: Messages = []
        if summary and (shape.older or first > 1):
            messages.append({"role": "system", "content": f"Summary of the conversation so far:\n{summary}"})
        if recalled:
            messages.append({"role": "system", "content": "Earlier messages that may matter now:\n"
                             + memory.transcript(recalled, space.recall)})
        messages += [{"role": m.role, "content": m.content} for m in shape.buffer] + list(new)
        return Context(messages, len(shape.buffer), len(shape.older), len(recalled), charged)

    def upkeep(self, uid: str, new: Messages, model: str | None = None) -> int:
        """The most one turn's memory calls hold beside its reply (µc): one summary call over a whole history's
        worth of messages, and one embedding of as much. A chat task's hold makes room for it within the task's
        maxCredits; a turn that needs more (many messages the summary lacks) leaves the rest to later turns."""
        talker = self.metered.catalog.get(self._summariser(uid, self.metered.route(model, capability_of(new), uid)),
                                          "chat")
        recall_on = bool(self.metered.catalog.models("embedding"))
        space = memory.budget(self.context_tokens, recall_on)
        framing = [{"role": "system", "content": SUMMARISE.format(words=space.summary)},
                   {"role": "user", "content": "Previous summary:\n\n\nNew messages:\n"}]
        history = self.context_tokens * BYTES_PER_TOKEN_ESTIMATED  # the most a history estimated so can be
        most = estimate(talker, prompt_tokens(framing) + self.context_tokens,
                        min(max(16, space.summary), talker.max_output), prompt_bound(framing) + history).micros
        if recall_on:
            most += estimate(self.metered.catalog.get(None, "embedding"), self.context_tokens, 0, history).micros
        return most

    def _summariser(self, uid: str, candidates: Sequence[Model]) -> str:
        """The model that makes the turn's summaries: summaries are text, so a chat model, for image turns too."""
        talkers = [m for m in candidates if "chat" in m.capabilities] or self.metered.route(None, uid=uid)
        return talkers[0].id

    def _beyond_window(self, uid: str, conversation_id: str, summary_upto: int,
                       first: int) -> Iterator[Stored]:
        """The messages before the window (seq < `first`) that the summary lacks, oldest first, a window's worth
        at a time. There are some only when messages left the window while they still fitted the buffer (many
        short ones); once summarised, they are never read again."""
        done = summary_upto
        while done + 1 < first:
            end = min(first, done + 1 + MEMORY_WINDOW)
            page = [m for m in self.store.messages(uid, conversation_id, before=end, limit=MEMORY_WINDOW)
                    if m.seq > done]
            if page:
                yield page
            done = end - 1

    def _summarise(self, uid: str, conversation_id: str, summary: str, fresh: Stored, space: memory.Budget,
                   key: str, model: str, budget: Budget | None = None) -> tuple[str, int, bool]:
        """Fold the messages the summary lacks into it: a metered chain step per run that fits. The summary, what
        it cost, and whether a run was deferred (a task's `budget` had no room for it: the summary stays as the
        runs before it left it)."""
        charged = 0
        for run in memory.chunks(fresh, space.buffer):
            prompt = [{"role": "system", "content": SUMMARISE.format(words=max(20, space.summary * 3 // 4))},
                      {"role": "user", "content": f"Previous summary:\n{summary or '(none)'}\n\nNew messages:\n"
                                                  + memory.transcript(run, space.buffer)}]
            try:
                result = self._summary_step(uid, prompt, f"{key}:summary:{run[-1].seq}", model,
                                            max(16, space.summary), budget)
            except AlreadyAnswered:  # a retry after this summary was made and stored: use the stored one
                return memory.clip(self.get(uid, conversation_id).summary, space.summary), charged, False
            except BudgetExhausted:  # refused before anything was charged
                return summary, charged, True
            summary, charged = memory.clip(result.text.strip(), space.summary), charged + result.charged
            self.store.set_summary(uid, conversation_id, summary, run[-1].seq)
        return summary, charged, False

    def _summary_step(self, uid: str, prompt: Messages, key: str, model: str, max_tokens: int,
                      budget: Budget | None = None) -> ChainStep:
        """One summary call, metered under `key`. The turn's retry after that call failed (its hold voided, nothing
        charged) makes it again under the next key (`key:2`, `key:3`, …), as a chat call's retry goes on to the
        next model's key: a spent key would fail the turn on every redelivery. One made and charged raises
        AlreadyAnswered; one still running, RequestInProgress. With a task's `budget` the call holds nothing of its
        own: one that failed charged nothing and its key serves the retry; one charged raises AlreadyAnswered."""
        if budget is not None:
            if self.metered.charged_before(uid, key):
                raise AlreadyAnswered("this summary was made and charged by an earlier attempt of the task")
            return self.metered.run_chain(uid, prompt, key=key, model=model, max_tokens=max_tokens, budget=budget)
        attempt = 1
        while True:
            step = key if attempt == 1 else f"{key}:{attempt}"
            retried = self.metered.held_before(uid, step)
            try:
                return self.metered.run_chain(uid, prompt, key=step, model=model, max_tokens=max_tokens)
            except ProviderUnavailable:
                if not retried:  # this call failed now: so does the turn, whose retry goes on to the next key
                    raise
            attempt += 1

    def _recall(self, uid: str, conversation_id: str, history: Stored, new: Messages,
                older: Stored, space: memory.Budget, key: str, budget: Budget | None = None
                ) -> tuple[Stored, int]:
        """Embed what has no vector yet and the new message (one metered call), then rank older messages. A turn
        embeds once: its retry (a redelivery after a later step failed) recalls nothing rather than pay again; the
        vectors the first attempt stored serve the next turns. (The retry cannot replay that call: the messages
        it embedded have their vectors now, so the same key would ask for another amount.) With a task's `budget`,
        charged from it: a turn whose task has no room left for it recalls nothing."""
        embed_key = f"{key}:embed"
        if self.metered.held_before(uid, embed_key) or (budget is not None and
                                                         self.metered.charged_before(uid, embed_key)):
            return [], 0
        missing = [m for m in history if m.vector is None]
        query = " ".join(text_of(m["content"]) for m in new if m["role"] == "user") or text_of(new[-1]["content"])
        try:
            result = self.metered.embed(uid, [m.content for m in missing] + [query], key=embed_key, budget=budget)
        except AlreadyAnswered:  # an attempt running alongside embedded first: recall is skipped, not re-paid
            return [], 0
        except BudgetExhausted:  # refused before anything was charged
            return [], 0
        vectors = {m.seq: v for m, v in zip(missing, result.vectors, strict=False)}
        if vectors:
            self.store.set_vectors(uid, conversation_id, vectors)
        with_vectors = [m if m.vector is not None or m.seq not in vectors else
                        memory.StoredMessage(m.seq, m.role, m.content, m.at, m.turn, tuple(vectors[m.seq]))
                        for m in older]
        return memory.recall(with_vectors, result.vectors[-1], space.recall), result.charged


def memory_use(context: Context) -> MemoryUse:
    return MemoryUse(context.buffered, context.summarised, context.recalled, context.charged)
