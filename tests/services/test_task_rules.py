"""The task rules (data in `catalog/task_rules.json`) decide by the request's kind, size, text, model, images and
its conversation's length: a chat turn in a long conversation is expected to take longer (its memory is summed up
and searched); the length is read only when a rule asks for it."""

from __future__ import annotations

from creditflow.bootstrap import Platform
from tests.conftest import funded

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def test_a_turn_in_a_long_conversation_is_expected_to_take_longer(ai: Platform) -> None:
    funded(ai, "u", 5)
    short, long = ai.conversations.start("u", "short"), ai.conversations.start("u", "long")
    for n in range(21):  # 42 messages: past the rule's 40
        ai.conversations.store.append_turn("u", long.id, f"turn{n}", [("user", f"q{n}"), ("assistant", f"a{n}")],
                                           long.created_at)
    assert ai.conversations.get("u", long.id).messages == 42
    reads: list[str] = []
    store_get = ai.conversations.store.get

    def counted(uid: str, conversation_id: str) -> object:
        reads.append(conversation_id)
        return store_get(uid, conversation_id)

    ai.conversations.store.get = counted  # type: ignore[method-assign]
    turn = {"kind": "chat", "input": "and then?", "model": LLAMA}
    judged = {"t-none": ai.tasks.submit("u", "t-none", turn)}
    assert reads == []  # no conversation: nothing to read
    judged |= {name: ai.tasks.submit("u", name, {**turn, "conversationId": c.id})
               for name, c in (("t-long", long), ("t-short", short))}
    assert {name: (t.seconds, t.route_reason.split(";")[0]) for name, t in judged.items()} == {
        "t-long": (25, "quick (a turn in a long conversation)"),
        "t-short": (15, "quick (a chat turn in a conversation)"),
        "t-none": (10, "quick (chat is quick)")}
    assert long.id in reads and short.id in reads


def test_a_turn_in_someone_elses_conversation_is_refused_before_anything_is_held(ai: Platform) -> None:
    funded(ai, "u", 1)
    funded(ai, "v", 1)
    theirs = ai.conversations.start("v", "private")
    task = ai.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA, "conversationId": theirs.id})
    assert task.state == "failed" and task.error["type"] == "unknown-conversation" and task.reserved == 0
    assert ai.credits.balance("u").held == 0
