"""One contract for the per-user stores the AI features use (conversations, catalog overrides, gateway keys, answers
kept for replays), on SQLite always and on Firestore emulators as the ledger contract is."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.answers import Answer, AnswerCharge
from creditflow.domain.api_keys import ApiKey
from creditflow.domain.conversations import Conversation
from creditflow.domain.preferences import Preferences
from tests.at_once import at_once
from tests.contract.conftest import BACKENDS

T0, T1, T2 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:02.000000Z"


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        from creditflow.adapters.local.answers import SqliteAnswers
        from creditflow.adapters.local.api_keys import SqliteApiKeys
        from creditflow.adapters.local.catalog_overrides import SqliteCatalogOverrides
        from creditflow.adapters.local.conversations import SqliteConversations
        from creditflow.adapters.local.preferences import SqlitePreferences
        from creditflow.adapters.local.welcome_claims import SqliteWelcomeClaims

        yield {"conversations": SqliteConversations(tmp_path / "c.sqlite3"), "backend": request.param,
               "overrides": SqliteCatalogOverrides(tmp_path / "o.sqlite3"), "keys": SqliteApiKeys(tmp_path / "k.db"),
               "preferences": SqlitePreferences(tmp_path / "p.sqlite3"),
               "claims": SqliteWelcomeClaims(tmp_path / "w.sqlite3"), "answers": SqliteAnswers(tmp_path / "a.db")}
        return
    from creditflow.adapters.firebase.answers import FirestoreAnswers
    from creditflow.adapters.firebase.api_keys import FirestoreApiKeys
    from creditflow.adapters.firebase.catalog_overrides import FirestoreCatalogOverrides
    from creditflow.adapters.firebase.conversations import FirestoreConversations
    from creditflow.adapters.firebase.preferences import FirestorePreferences
    from creditflow.adapters.firebase.welcome_claims import FirestoreWelcomeClaims

    client = request.getfixturevalue("firestore_client")
    yield {"conversations": FirestoreConversations(client), "overrides": FirestoreCatalogOverrides(client),
           "keys": FirestoreApiKeys(client), "preferences": FirestorePreferences(client),
           "claims": FirestoreWelcomeClaims(client), "answers": FirestoreAnswers(client), "backend": request.param}


def test_conversations_keep_turns_once_and_only_for_their_owner(stores: dict[str, Any]) -> None:
    talk = stores["conversations"]
    for n, at in enumerate((T0, T1, T2)):
        talk.create(Conversation(id=f"conv_{n}", uid="a", title=f"c{n}", created_at=at, updated_at=at))
    talk.create(Conversation(id="conv_x", uid="b", title="theirs", created_at=T0, updated_at=T0))
    assert talk.append_turn("a", "conv_0", "t1", [("user", "hi"), ("assistant", "hello")], T2)
    assert not talk.append_turn("a", "conv_0", "t1", [("user", "hi"), ("assistant", "hello")], T2)  # once
    assert not talk.append_turn("b", "conv_0", "t2", [("user", "mine?")], T2)  # not theirs
    assert talk.append_turn("a", "conv_0", "t2", [("user", "again")], T2)
    assert [(m.seq, m.role, m.content, m.turn) for m in talk.messages("a", "conv_0")] == [
        (1, "user", "hi", "t1"), (2, "assistant", "hello", "t1"), (3, "user", "again", "t2")]
    assert talk.messages("b", "conv_0") == [] and talk.get("b", "conv_0") is None
    assert talk.has_turn("a", "conv_0", "t1") and not talk.has_turn("a", "conv_0", "t3")
    assert talk.get("a", "conv_0").messages == 3
    talk.set_vectors("a", "conv_0", {1: [0.5, -0.25], 2: [1.0, 0.0]})
    assert [m.vector for m in talk.messages("a", "conv_0")] == [(0.5, -0.25), (1.0, 0.0), None]
    talk.set_summary("a", "conv_0", "they greeted", 2)
    talk.set_summary("a", "conv_0", "older summary", 1)  # never goes back
    assert (talk.get("a", "conv_0").summary, talk.get("a", "conv_0").summary_upto) == ("they greeted", 2)
    assert [c.id for c in talk.of_user("a", 2, None)] == ["conv_2", "conv_0"]  # latest first (T2 both), then by id
    assert not talk.delete("b", "conv_0") and talk.delete("a", "conv_0")
    assert talk.get("a", "conv_0") is None and talk.messages("a", "conv_0") == []



def test_another_users_turns_summary_and_vectors_are_out_of_reach(stores: dict[str, Any]) -> None:
    """Every read and write of a conversation is its owner's: another user asking with its id finds no turn and
    writes no summary or vector into it."""
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_0", uid="a", title="mine", created_at=T0, updated_at=T0))
    assert talk.append_turn("a", "conv_0", "t1", [("user", "hi"), ("assistant", "hello")], T1)
    assert not talk.has_turn("b", "conv_0", "t1")
    talk.set_summary("b", "conv_0", "written by b", 2)
    talk.set_vectors("b", "conv_0", {1: [0.5], 2: [1.0]})
    assert (talk.get("a", "conv_0").summary, talk.get("a", "conv_0").summary_upto) == ("", 0)
    assert [m.vector for m in talk.messages("a", "conv_0")] == [None, None]


@pytest.mark.parametrize("text", ["", "a/b", "conv_0/messages/0000000001", ".", "..", "__x__", "x" * 1500,
                                  "x" * 2000],
                         ids=lambda text: (text or "empty") if len(text) < 40 else f"{len(text)} bytes")
def test_text_that_is_no_conversation_or_key_id_finds_nothing(stores: dict[str, Any], text: str) -> None:
    """A conversation's id (in a path, or a task's conversationId) and a key's id (in a path) are any text a caller
    sends: each finds nothing and changes nothing, as an id that never was; never an error (on Firestore, a
    document id with a slash or of a reserved form, or a value too long for a query, is an error to ask for)."""
    talk, keys = stores["conversations"], stores["keys"]
    talk.create(Conversation(id="conv_0", uid="a", title="c", created_at=T0, updated_at=T0))
    assert talk.append_turn("a", "conv_0", "t1", [("user", "hi")], T1)
    assert talk.get("a", text) is None and talk.messages("a", text) == [] and not talk.has_turn("a", text, "t1")
    assert not talk.append_turn("a", text, "t2", [("user", "hi")], T2) and not talk.delete("a", text)
    talk.set_summary("a", text, "s", 1)
    talk.set_vectors("a", text, {1: [0.5]})
    assert [(m.seq, m.content, m.vector) for m in talk.messages("a", "conv_0")] == [(1, "hi", None)]
    assert talk.get("a", "conv_0").summary_upto == 0
    assert not keys.revoke("a", text, T0)


def after_reading(monkeypatch: pytest.MonkeyPatch, stores: dict[str, Any], conversation_id: str,
                  other: Callable[[], object]) -> None:
    """Run `other` at once on SQLite (one statement: nothing can come between its read and its write); on Firestore,
    just after the next read of the conversation's document, before the write that follows it."""
    if stores["backend"] == "sqlite":
        other()
        return
    from google.cloud.firestore_v1.document import DocumentReference

    read, done = DocumentReference.get, list[bool]()

    def read_then_other(self: DocumentReference, *args: Any, **kwargs: Any) -> Any:
        snapshot = read(self, *args, **kwargs)
        if not done and self.id == conversation_id:
            done.append(True)
            other()
        return snapshot

    monkeypatch.setattr(DocumentReference, "get", read_then_other)


def test_a_summary_made_alongside_a_later_one_does_not_move_it_back(stores: dict[str, Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two turns summarise at once: the one covering fewer messages reads the conversation, the other writes its
    summary, then the first writes: the later summary stays."""
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_s", uid="a", title="t", created_at=T0, updated_at=T0))
    after_reading(monkeypatch, stores, "conv_s", lambda: talk.set_summary("a", "conv_s", "up to 14", 14))
    talk.set_summary("a", "conv_s", "up to 10", 10)
    assert (talk.get("a", "conv_s").summary, talk.get("a", "conv_s").summary_upto) == ("up to 14", 14)


def test_a_summary_of_a_conversation_deleted_meanwhile_is_dropped(stores: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_d", uid="a", title="t", created_at=T0, updated_at=T0))
    after_reading(monkeypatch, stores, "conv_d", lambda: talk.delete("a", "conv_d"))
    talk.set_summary("a", "conv_d", "too late", 4)  # no error, and nothing brought back
    assert talk.get("a", "conv_d") is None


def test_vectors_for_a_conversation_deleted_meanwhile_are_dropped(stores: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn's embedding was paid, then its conversation deleted before the vectors were written: they are dropped
    without an error (the turn goes on), and bring back nothing of the conversation. Vectors for messages that are
    not there (deleted, or never stored) are dropped the same way, while the others are written."""
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_v", uid="a", title="t", created_at=T0, updated_at=T0))
    talk.append_turn("a", "conv_v", "t1", [("user", "hi"), ("assistant", "hello")], T1)
    talk.set_vectors("a", "conv_v", {1: [0.5, 0.5], 7: [1.0, 0.0]})  # message 7 does not exist
    assert [m.vector for m in talk.messages("a", "conv_v")] == [(0.5, 0.5), None]
    after_reading(monkeypatch, stores, "conv_v", lambda: talk.delete("a", "conv_v"))
    talk.set_vectors("a", "conv_v", {1: [0.25, 0.75], 2: [0.0, 1.0]})  # no error
    assert talk.get("a", "conv_v") is None and talk.messages("a", "conv_v") == []
    if stores["backend"] != "sqlite":
        left = talk.client.collection("conversations").document("conv_v").collection("messages").get()
        assert left == []


def test_a_turn_stored_while_its_conversation_is_deleted_leaves_nothing(stores: dict[str, Any],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn is stored while the conversation is being deleted (after its messages were listed for deletion): no
    message of it outlives the conversation, where nothing lists it and a conversation made again under the same
    id (a start retried with its Idempotency-Key) would show it."""
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_r", uid="a", title="t", created_at=T0, updated_at=T0))
    talk.append_turn("a", "conv_r", "t1", [("user", "hi"), ("assistant", "hello")], T1)

    def late() -> None:
        assert talk.append_turn("a", "conv_r", "t2", [("user", "secret"), ("assistant", "noted")], T2)

    if stores["backend"] == "sqlite":
        late()  # the delete is one transaction: the turn comes before it or after
    else:
        from google.cloud.firestore_v1.collection import CollectionReference

        listing, done = CollectionReference.stream, list[bool]()

        def list_then_store(self: CollectionReference, *args: Any, **kwargs: Any) -> Any:
            listed = list(listing(self, *args, **kwargs))
            if not done and self.id == "messages":
                done.append(True)
                late()
            return iter(listed)

        monkeypatch.setattr(CollectionReference, "stream", list_then_store)
    assert talk.delete("a", "conv_r") and talk.get("a", "conv_r") is None
    talk.create(Conversation(id="conv_r", uid="a", title="again", created_at=T2, updated_at=T2))
    assert talk.messages("a", "conv_r") == [] and not talk.has_turn("a", "conv_r", "t2")
    if stores["backend"] != "sqlite":
        left = talk.client.collection("conversations").document("conv_r").collection("messages").get()
        assert [m.to_dict()["content"] for m in left] == []


def test_conversations_come_a_page_at_a_time(stores: dict[str, Any]) -> None:
    talk = stores["conversations"]
    for n, at in enumerate((T0, T1, T2, T2)):
        talk.create(Conversation(id=f"conv_{n}", uid="a", title=f"c{n}", created_at=at, updated_at=at))
    first = talk.of_user("a", 2, None)
    assert [c.id for c in first] == ["conv_3", "conv_2"]
    rest = talk.of_user("a", 2, f"{first[-1].updated_at}|{first[-1].id}")
    assert [c.id for c in rest] == ["conv_1", "conv_0"]
    assert talk.of_user("a", 2, f"{rest[-1].updated_at}|{rest[-1].id}") == []


def test_messages_come_latest_first_a_page_at_a_time(stores: dict[str, Any]) -> None:
    talk = stores["conversations"]
    talk.create(Conversation(id="conv_m", uid="a", title="long", created_at=T0, updated_at=T0))
    for n in range(7):
        talk.append_turn("a", "conv_m", f"t{n}", [("user", f"m{n}")], T1)
    assert [m.seq for m in talk.messages("a", "conv_m", limit=3)] == [5, 6, 7]  # the latest, oldest first
    assert [m.seq for m in talk.messages("a", "conv_m", before=5, limit=3)] == [2, 3, 4]
    assert [m.seq for m in talk.messages("a", "conv_m", before=2, limit=3)] == [1]
    assert [m.seq for m in talk.messages("a", "conv_m", before=4)] == [1, 2, 3]
    assert talk.messages("b", "conv_m", limit=3) == []


def test_catalog_overrides_round_trip(stores: dict[str, Any]) -> None:
    overrides = stores["overrides"]
    overrides.put("meta-llama/Llama-3.3-70B-Instruct", {"enabled": False}, T0)
    overrides.put("new/model", {"provider": "platform", "prices": {"input_per_million": "1"}}, T0)
    overrides.put("meta-llama/Llama-3.3-70B-Instruct", {"enabled": True, "label": "L"}, T1)
    assert overrides.all() == {"meta-llama/Llama-3.3-70B-Instruct": {"enabled": True, "label": "L"},
                               "new/model": {"provider": "platform", "prices": {"input_per_million": "1"}}}
    assert overrides.delete("new/model") and not overrides.delete("new/model")
    assert list(overrides.all()) == ["meta-llama/Llama-3.3-70B-Instruct"]


def test_a_keys_limit_counts_what_is_in_flight(stores: dict[str, Any]) -> None:
    keys = stores["keys"]
    keys.add(ApiKey(id="key_1", uid="a", name="n", prefix="cf_abcdefg", hash="h1", created_at=T0, limit=10))
    assert keys.claim_spend("key_1", "c1", 6, T2, T0) and not keys.claim_spend("key_1", "c2", 5, T2, T0)  # 6 + 5 > 10
    assert keys.in_flight("key_1", T0) == 6
    keys.record_spend("key_1", "c1", 4)  # the call cost 4
    assert keys.in_flight("key_1", T0) == 0 and keys.by_hash("h1").spent == 4
    # one call, two holds:
    assert keys.claim_spend("key_1", "c2", 3, T2, T0) and keys.claim_spend("key_1", "c2", 3, T2, T0)
    assert keys.in_flight("key_1", T0) == 6 and not keys.claim_spend("key_1", "c3", 1, T2, T0)
    assert keys.revoke("a", "key_1", T1) and not keys.revoke("b", "key_1", T1) and not keys.revoke("a", "key_9", T1)
    assert keys.revoke("a", "key_1", T2)  # revoking again is no error: it stays revoked, at its first time
    assert keys.by_hash("h1").revoked_at == T1


def test_calls_on_one_key_ending_at_once_each_count_their_spend(stores: dict[str, Any]) -> None:
    """Six calls through one key end together: each adds what it cost and drops its claim, none refused for the
    others (on Firestore a read-modify-write of the key lost its race after the call was charged: a 503 for a call
    answered, and its cost never counted against the key's limit)."""
    keys = stores["keys"]
    keys.add(ApiKey(id="key_5", uid="a", name="n", prefix="cf_vwxyzab", hash="h5", created_at=T0, limit=100))
    calls = [f"call:gw_{n}-x.y" for n in range(6)]  # ids as field names: quoted, whatever they hold
    assert all(keys.claim_spend("key_5", call, 10, T2, T0) for call in calls)
    failed = at_once(len(calls), lambda n: keys.record_spend("key_5", calls[n], n + 1))
    assert not failed and keys.by_hash("h5").spent == 21 and keys.in_flight("key_5", T0) == 0, failed


def test_calls_on_one_key_starting_at_once_are_each_answered_within_its_limit(stores: dict[str, Any]) -> None:
    """Six calls through one key start together with room for two: two are counted, the others refused for the
    limit, and none fails for the race (on Firestore each claim is a transaction on the key's one document)."""
    keys, admitted = stores["keys"], []
    keys.add(ApiKey(id="key_8", uid="a", name="n", prefix="cf_efghijk", hash="h8", created_at=T0, limit=25))
    failed = at_once(6, lambda n: keys.claim_spend("key_8", f"c{n}", 10, T2, T0) and admitted.append(n))
    assert not failed and len(admitted) == 2 and keys.in_flight("key_8", T0) == 20, failed


def test_a_spend_recorded_while_another_call_claims_the_key_is_counted(stores: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A call ends (charged) while another call's claim holds the key: its spend is counted once the claim is done
    (on Firestore, the claim's transaction locks the key's document, and a write meeting the lock is aborted after
    about two seconds: it tries again rather than leave a charged call uncounted)."""
    keys, ending, failed = stores["keys"], list[threading.Thread](), list[BaseException]()
    keys.add(ApiKey(id="key_9", uid="a", name="n", prefix="cf_lmnopqr", hash="h9", created_at=T0, limit=100))
    assert keys.claim_spend("key_9", "done", 10, T2, T0)

    def other() -> None:
        try:
            keys.record_spend("key_9", "done", 7)
        except Exception as error:
            failed.append(error)

    if stores["backend"] == "sqlite":
        other()  # one process's writes take turns: nothing to meet
    else:
        from google.cloud.firestore_v1.document import DocumentReference

        read = DocumentReference.get

        def read_then_hold(self: DocumentReference, *args: Any, **kwargs: Any) -> Any:
            snapshot = read(self, *args, **kwargs)
            if kwargs.get("transaction") is not None and not ending:
                ending.append(threading.Thread(target=other))
                ending[0].start()
                time.sleep(2.5)  # the claim holds the key's lock past the emulator's timeout
            return snapshot

        monkeypatch.setattr(DocumentReference, "get", read_then_hold)
    assert keys.claim_spend("key_9", "next", 10, T2, T0)
    monkeypatch.undo()
    for thread in ending:
        thread.join(30)
    assert not failed and keys.by_hash("h9").spent == 7 and keys.in_flight("key_9", T0) == 10, failed


def test_a_key_is_stored_once(stores: dict[str, Any]) -> None:
    keys = stores["keys"]
    key = ApiKey(id="key_3", uid="a", name="n", prefix="cf_opqrstu", hash="h3", created_at=T0)
    assert keys.add(key) and not keys.add(key)
    assert not keys.add(ApiKey(id="key_4", uid="a", name="other", prefix="cf_opqrstu", hash="h3", created_at=T1))
    assert [k.id for k in keys.of_user("a") if k.hash == "h3"] == ["key_3"] and keys.by_hash("h3").name == "n"



def test_a_users_keys_are_listed_oldest_first(stores: dict[str, Any]) -> None:
    keys = stores["keys"]
    for key_id, key_hash, at in (("key_b", "ha", T2), ("key_a", "hz", T0), ("key_c", "hm", T1)):
        keys.add(ApiKey(id=key_id, uid="a", name="n", prefix="cf_qrstuvw", hash=key_hash, created_at=at))
    keys.add(ApiKey(id="key_x", uid="b", name="n", prefix="cf_xyzabcd", hash="hb", created_at=T0))
    assert [k.id for k in keys.of_user("a")] == ["key_a", "key_c", "key_b"]


def test_a_call_cut_off_stops_counting_when_its_time_is_up(stores: dict[str, Any]) -> None:
    keys = stores["keys"]
    keys.add(ApiKey(id="key_2", uid="a", name="n", prefix="cf_hijklmn", hash="h2", created_at=T0, limit=10))
    assert keys.claim_spend("key_2", "cut", 9, T1, T0)  # a call that will never finish (its process was killed)
    assert not keys.claim_spend("key_2", "next", 2, T2, T0)  # until T1 it counts
    assert keys.in_flight("key_2", T1) == 0  # from T1 on, it does not
    assert keys.claim_spend("key_2", "next", 2, T2, T1) and keys.in_flight("key_2", T1) == 2
    keys.record_spend("key_2", "cut", 0)  # settling a call whose time is up changes nothing but what was spent
    assert keys.in_flight("key_2", T1) == 2 and keys.by_hash("h2").spent == 0
    keys.record_spend("key_2", None, 3)  # a call that was never counted (its key had no limit then) only spends
    assert keys.in_flight("key_2", T1) == 2 and keys.by_hash("h2").spent == 3


def test_a_call_whose_hold_was_extended_counts_until_its_new_time(stores: dict[str, Any]) -> None:
    keys = stores["keys"]
    keys.add(ApiKey(id="key_3", uid="a", name="n", prefix="cf_opqrstu", hash="h3", created_at=T0, limit=10))
    assert keys.claim_spend("key_3", "long", 9, T1, T0)
    keys.record_spend("key_3", None, 1)  # another call spent the rest of the limit meanwhile
    assert keys.claim_spend("key_3", "long", 0, T2, T0)  # counting nothing more only moves its time on
    assert keys.in_flight("key_3", T1) == 9 and not keys.claim_spend("key_3", "other", 1, T2, T1)
    assert keys.in_flight("key_3", T2) == 0


def test_an_extended_call_counts_on_past_the_limit_and_never_for_less_time(stores: dict[str, Any]) -> None:
    """A call's hold is extended after its key's spend passed the limit (another call charged past its claim): the
    extension counts nothing more, so it is taken, and the call counts until its new time. An extension asking an
    earlier time (another instance's clock behind) does not cut the call's count short."""
    keys = stores["keys"]
    keys.add(ApiKey(id="key_6", uid="a", name="n", prefix="cf_cdefghi", hash="h6", created_at=T0, limit=10))
    assert keys.claim_spend("key_6", "long", 9, T1, T0)
    keys.record_spend("key_6", None, 5)  # 5 spent and 9 in flight: past the limit of 10
    assert keys.claim_spend("key_6", "long", 0, T2, T0) and keys.in_flight("key_6", T1) == 9
    assert keys.claim_spend("key_6", "long", 0, T1, T0) and keys.in_flight("key_6", T1) == 9


def test_a_claim_counts_a_spend_recorded_by_another_instance_as_it_starts(stores: dict[str, Any],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another instance records a call's spend just after this one found the key, before it counts: the claim
    counts that spend (read in its transaction), so the key's limit is not passed."""
    keys, done = stores["keys"], list[bool]()
    keys.add(ApiKey(id="key_7", uid="a", name="n", prefix="cf_jklmnop", hash="h7", created_at=T0, limit=10))

    def other() -> None:
        keys.record_spend("key_7", None, 8)

    if stores["backend"] == "sqlite":
        other()  # one transaction: nothing comes between finding the key and counting
    else:
        find = keys._by_id

        def find_then_other(key_id: str) -> Any:
            found = find(key_id)
            if not done:
                done.append(True)
                other()
            return found

        monkeypatch.setattr(keys, "_by_id", find_then_other)
    assert not keys.claim_spend("key_7", "c", 5, T2, T0)  # 8 spent: 5 more would pass 10
    assert keys.in_flight("key_7", T0) == 0 and keys.by_hash("h7").spent == 8


def test_preferences_are_each_users_own(stores: dict[str, Any]) -> None:
    preferences = stores["preferences"]
    assert preferences.get("a") == Preferences()  # nothing stored: the defaults
    mine = Preferences(preferred_model="demo-chat", max_credits_per_request=2_500_000, cost_saving=True)
    preferences.put("a", mine)
    assert preferences.get("a") == mine and preferences.get("b") == Preferences()
    preferences.put("a", Preferences(cost_saving=True))  # a put replaces the whole record
    assert preferences.get("a") == Preferences(cost_saving=True)


def test_a_device_claims_the_welcome_bonus_once_and_networks_are_counted(stores: dict[str, Any]) -> None:
    claims = stores["claims"]
    assert claims.claim_device("dev1", "a", T0) == "a"
    assert claims.claim_device("dev1", "b", T1) == "a"  # the first claimant keeps it
    assert claims.claim_device("dev1", "a", T2) == "a"
    for uid, at in (("b", T0), ("a", T1), ("a", T2)):  # another's claim, or another moment's: it stays
        claims.release_device("dev1", uid, at)
    assert claims.claim_device("dev1", "b", T2) == "a"
    claims.release_device("dev1", "a", T0)  # the claim a refused claim made: the device is free again
    claims.release_device("dev2", "a", T0)  # no claim at all: nothing happens
    assert claims.claim_device("dev1", "b", T2) == "b"
    for uid, at in (("a", T0), ("b", T1), ("c", T2)):
        assert claims.take_ip_claim("net1", uid, at, T0, limit=3)
    assert claims.take_ip_claim("net1", "b", T2, T0, limit=3)  # one user counts once, at its first claim
    assert claims.count_ip_claims("net1", T0) == 3 and claims.count_ip_claims("net1", T1) == 2
    assert claims.count_ip_claims("net1", T2) == 1  # b's claim stays at T1: claiming again moves no place on
    assert not claims.take_ip_claim("net1", "d", T2, T0, limit=3)  # three others since T0: no place
    assert claims.take_ip_claim("net1", "d", T2, T1, limit=3)  # within a window from T1, two: a place
    claims.release_ip_claim("net1", "d", T1)  # another moment's: it stays
    assert claims.count_ip_claims("net1", T1) == 3
    claims.release_ip_claim("net1", "d", T2)  # the claim a refused claim made: the place is free again
    assert claims.count_ip_claims("net1", T1) == 2 and claims.count_ip_claims("net2", T0) == 0


def test_claims_racing_for_a_networks_last_places_never_pass_its_limit(stores: dict[str, Any]) -> None:
    """Six users of one network claim at once with two places left: two take them (counted and taken in one
    step; a count then a record let all six through)."""
    claims, taken = stores["claims"], []
    assert not at_once(6, lambda n: claims.take_ip_claim("busy-net", f"user{n}", T1, T0, limit=2) and taken.append(n))
    assert len(taken) == 2 and claims.count_ip_claims("busy-net", T0) == 2


def test_answers_are_kept_once_per_key_for_their_asker_until_their_time(stores: dict[str, Any]) -> None:
    answers = stores["answers"]
    reply = {"text": "héllo", "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}],
             "tried": [], "charged": 33}
    answers.keep(Answer("a", "k1", "digest-1", reply, T0, T2))
    answers.keep(Answer("a", "k1", "digest-2", {"text": "other"}, T1, T2))  # the first stays
    assert answers.find("a", "k1", T1) == Answer("a", "k1", "digest-1", reply, T0, T2)
    assert answers.find("b", "k1", T1) is None and answers.find("a", "k2", T1) is None  # another's, another key
    assert answers.find("a", "k1", T2) is None  # its time is over
    charge = AnswerCharge("hold_1", 33, "k1:settle", {"model": "m", "prompt_tokens": "5"})
    answers.keep(Answer("b", "k1", "digest-3", {"text": "theirs"}, T2, "2026-01-02T00:00:00.000000Z", charge))
    kept = answers.find("b", "k1", T2)
    assert (kept.reply, kept.charge) == ({"text": "theirs"}, charge)  # the charge it is kept before
