"""The OpenAI-compatible gateway, used with the official openai SDK as any client would."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest

from creditflow.domain.pricing import estimate_tokens, token_cost
from tests.e2e.server import LocalServer
from tests.fake_openai import FakeOpenAI
from tests.media_samples import encoded, halves

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
VISION = "Qwen/Qwen2.5-VL-72B-Instruct"


def new_key(server: LocalServer, uid: str, credits: str | None = "5", limit: str | None = None) -> str:
    if credits:
        server.call("POST", "/api/v1/admin/grants", {"uid": uid, "amount": credits},
                    token=server.token("root", admin=True), headers={"Idempotency-Key": f"gw-{uid}"})
    made = server.call("POST", "/api/v1/keys", {"name": "laptop", **({"limit": limit} if limit else {})},
                       token=server.token(uid))
    assert made.status == 200, made.body
    assert made.json["key"].startswith("cf_") and made.json["prefix"] == made.json["key"][:10]
    return made.json["key"]


def client(server: LocalServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_chat_completions_plain_and_streamed(server: LocalServer) -> None:
    sdk = client(server, new_key(server, "gw-user"))
    assert [m.id for m in sdk.models.list()] == ["demo-chat", "demo-vision", "demo-embed", "demo-image", "auto"]
    assert sdk.models.retrieve("demo-chat").owned_by == "demo" and sdk.models.retrieve("auto").id == "auto"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-nope")
    routed = sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert routed.model == "demo-chat"
    raw = sdk.chat.completions.with_raw_response.create(model="demo-chat",
                                                        messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()
    charged = int(raw.headers["x-creditflow-charged-micros"])
    assert completion.choices[0].message.content.startswith("[demo") and charged > 0
    assert completion.usage is not None and completion.usage.total_tokens > 0
    chunks = list(sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}],
                                              stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # as OpenAI's: the first delta names the role, so the SDK's accumulated message can be sent back as a turn
    assert chunks[0].choices[0].delta.role == "assistant"
    with sdk.chat.completions.stream(model="demo-chat", messages=[{"role": "user", "content": "hi"}]) as stream:
        said = stream.get_final_completion().choices[0].message
    turn = sdk.chat.completions.create(model="demo-chat", messages=[
        {"role": "user", "content": "hi"}, said.model_dump(exclude_none=True), {"role": "user", "content": "more"}])
    assert said.role == "assistant" and turn.choices[0].message.content
    balance = server.call("GET", "/api/v1/credits/balance", token=server.token("gw-user")).json
    assert balance["held"]["micros"] == 0 and balance["available"]["micros"] < 5_000_000
    keys = server.call("GET", "/api/v1/keys", token=server.token("gw-user")).json["keys"]
    assert keys[0]["spent"]["micros"] >= 2 * charged and "key" not in keys[0]



def http_chunks(server: LocalServer, path: str, body: dict[str, Any], key: str) -> list[bytes]:
    """The chunks of a chunked response, as the server wrote them (read on a raw socket, not reassembled)."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(server.url)
    data = json.dumps(body).encode()
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                     .encode() + data)
        raw = b""
        while block := sock.recv(65536):
            raw += block
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"chunked" in head.lower(), head
    chunks = []
    while True:
        size, _, rest = rest.partition(b"\r\n")
        if int(size, 16) == 0:
            return chunks
        chunks.append(rest[:int(size, 16)])
        rest = rest[int(size, 16) + 2:]


def test_a_streams_events_known_at_one_moment_go_in_one_write(server: LocalServer) -> None:
    """The role's event goes with the first piece's, and the finish, the usage and [DONE] together: a client
    reads as many events, in fewer writes."""
    key = new_key(server, "gw-writes")
    chunks = http_chunks(server, "/v1/chat/completions", {
        "model": "demo-chat", "messages": [{"role": "user", "content": "hi there, how are you"}], "stream": True,
        "stream_options": {"include_usage": True}}, key)
    events = [[json.loads(line[6:]) if line != b"data: [DONE]" else "[DONE]" for line in chunk.split(b"\n\n") if line]
              for chunk in chunks]
    assert len(events) >= 3 and all(events)
    first, *middle, last = events
    assert [e["choices"][0]["delta"].get("role") for e in first] == ["assistant", None]
    assert first[1]["choices"][0]["delta"]["content"] and all(len(e) == 1 for e in middle)
    assert last[0]["choices"][0]["finish_reason"] == "stop" and last[1]["usage"]["completion_tokens"] > 0
    assert last[2:] == ["[DONE]"]


def test_every_call_gives_back_its_place_among_the_calls_in_flight(server: LocalServer) -> None:
    """A streamed reply holds its place until the stream ends, a refused call until its error is sent: more calls
    in a row than a user may have at once all go through."""
    from creditflow.entrypoints.http.app import MAX_CALLS_PER_CALLER

    sdk = client(server, new_key(server, "gw-steady", credits="50"))
    capped = client(server, new_key(server, "gw-steady", credits=None, limit="0.000001"))  # the same user's
    asked = [{"role": "user", "content": "again"}]
    for n in range(MAX_CALLS_PER_CALLER + 4):
        if n % 2:
            assert list(sdk.chat.completions.create(model="demo-chat", messages=asked, stream=True))
        else:
            with pytest.raises(openai.APIStatusError) as refused:  # by the key's limit, once its place was taken
                capped.chat.completions.create(model="demo-chat", messages=asked)
            assert refused.value.status_code == 429 and refused.value.code == "insufficient_quota"

def test_bad_keys_models_and_parameters_get_openai_errors(server: LocalServer) -> None:
    key = new_key(server, "gw-careful")
    with pytest.raises(openai.AuthenticationError):
        client(server, "cf_not-a-real-key").models.list()
    with pytest.raises(openai.AuthenticationError) as signed_in:  # the token that works on /api/v1
        client(server, server.token("gw-careful")).models.list()
    assert "a sign-in token is for /api/v1" in signed_in.value.body["message"]
    sdk = client(server, key)
    with pytest.raises(openai.BadRequestError) as too_long:  # OpenAI's code and parameter for it
        sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "word " * 9000}])
    assert (too_long.value.code, too_long.value.param) == ("context_length_exceeded", "messages")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}],
                                    max_tokens=10**7)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="demo-chat", messages=[])
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="text-embedding-3-small", input="hello")
    before = server.call("GET", "/api/v1/credits/balance", token=server.token("gw-careful")).json
    assert before["available"]["micros"] == 5_000_000


HI = [{"role": "user", "content": "hi"}]
BAD_BODIES = [
    ({"model": "demo-chat", "messages": HI, "stream": True, "stream_options": "x"}, 400, "stream_options"),
    ({"model": "demo-chat", "messages": HI, "stream": True, "stream_options": {"include_usage": "yes"}}, 400,
     "stream_options.include_usage"),
    ({"model": "demo-chat", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, 400, "messages[0]"),
    ({"model": "demo-chat", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, 400,
     "messages[0]"),
    ({"model": "demo-chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
     400, "messages[0]"),
    ({"model": "demo-chat", "messages": HI, "tools": [1]}, 400, "tools"),
    # options passed on to the provider: the demo provider ignores them, a real one refuses them after a hold
    ({"model": "demo-chat", "messages": HI, "temperature": "hot"}, 400, "temperature"),
    ({"model": "demo-chat", "messages": HI, "temperature": 2.5}, 400, "temperature"),
    ({"model": "demo-chat", "messages": HI, "top_p": -0.1}, 400, "top_p"),
    ({"model": "demo-chat", "messages": HI, "presence_penalty": True}, 400, "presence_penalty"),
    ({"model": "demo-chat", "messages": HI, "seed": 1.5}, 400, "seed"),
    ({"model": "demo-chat", "messages": HI, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"model": "demo-chat", "messages": HI, "logit_bias": {"x": 5}}, 400, "logit_bias"),
    ({"model": "demo-chat", "messages": HI, "response_format": "json"}, 400, "response_format"),
    ({"model": "demo-chat", "messages": HI, "tool_choice": "always"}, 400, "tool_choice"),
    ({"model": "demo-chat", "messages": HI, "parallel_tool_calls": "yes"}, 400, "parallel_tool_calls"),
    ({"model": "demo-chat", "messages": HI, "user": 7}, 400, "user"),
    ({"model": "demo-chat", "messages": HI, "n": True}, 400, "n"),
    # shapes OpenAI refuses, each once a 500 from the demo after a hold, or a provider's refusal after one
    ({"model": "demo-chat", "messages": HI, "tools": [{"type": "function", "function": "arithmetic"}]}, 400,
     "tools"),
    ({"model": "demo-chat", "messages": HI, "tools": []}, 400, "tools"),
    ({"model": "demo-chat", "messages": HI, "response_format": {"type": "json_schema", "json_schema": "x"}}, 400,
     "response_format"),
    ({"model": "demo-chat", "messages": HI, "response_format": {"type": "xml"}}, 400, "response_format"),
    ({"model": "demo-chat", "messages": HI, "tool_choice": {"type": "function", "function": {"name": "f"}}}, 400,
     "tool_choice"),  # no tools to choose from
    ({"model": "demo-chat", "messages": HI, "logprobs": True}, 400, "logprobs"),  # not passed back: refused
    ({"model": "demo-chat", "messages": HI, "top_logprobs": 2}, 400, "top_logprobs"),
    ({"model": "demo-chat", "messages": HI, "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ({"model": "demo-chat", "messages": HI, "max_tokens": 0}, 400, "max_tokens"),  # as OpenAI: at least 1
    ({"model": "demo-chat", "messages": HI, "max_completion_tokens": 0}, 400, "max_tokens"),
    ({"model": "demo-chat", "messages": [{"role": "user", "content": "x" * 3_000_000}]}, 413, None),
]


BODIES_KEY: dict[str, str] = {}  # the key the bad bodies are sent with, by server


@pytest.mark.parametrize(("body", "status", "param"), BAD_BODIES)
def test_bad_bodies_get_openai_errors_and_cost_nothing(server: LocalServer, body: dict, status: int,
                                                       param: str | None) -> None:
    import http.client

    key = BODIES_KEY.get(server.url) or BODIES_KEY.setdefault(server.url, new_key(server, "gw-bodies"))  # 25 at most
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    connection.request("POST", "/v1/chat/completions", json.dumps(body),
                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    error = json.loads(response.read())["error"]
    assert response.status == status and response.getheader("Content-Type") == "application/json"
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    entries = server.call("GET", "/api/v1/credits/history", token=server.token("gw-bodies")).json["entries"]
    assert [e["kind"] for e in entries] == ["grant"]


@pytest.mark.parametrize("idempotency_key", ["bad key!", "k" * 201])
def test_a_bad_idempotency_key_is_refused_in_its_own_words(server: LocalServer, idempotency_key: str) -> None:
    sdk = client(server, new_key(server, "gw-keyed"))
    for call in (lambda: sdk.chat.completions.create(model="demo-chat", messages=HI,
                                                     extra_headers={"Idempotency-Key": idempotency_key}),
                 lambda: sdk.embeddings.create(model="demo-embed", input="x",
                                               extra_headers={"Idempotency-Key": idempotency_key})):
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        assert refused.value.body["message"].startswith(f"Idempotency-Key {idempotency_key!r} must be 1-200")
    rest = server.call("POST", "/api/v1/chat", {"messages": HI}, token=server.token("gw-keyed"),
                       headers={"Idempotency-Key": idempotency_key})
    assert rest.status == 400 and rest.json["detail"].startswith(f"Idempotency-Key {idempotency_key!r}")
    entries = server.call("GET", "/api/v1/credits/history", token=server.token("gw-keyed")).json["entries"]
    assert [e["kind"] for e in entries] == ["grant"]


def test_a_request_sent_again_with_its_key_gets_its_first_answer_charged_once(server: LocalServer) -> None:
    """As a client retrying after a lost response would: the same answer (the same id), nothing charged again;
    the same key with another request is a conflict, final for the SDK (x-should-retry: false), which changes
    nothing."""
    key = new_key(server, "gw-retried")
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=2)  # the SDK's default
    sent = {"model": "demo-chat", "messages": HI, "extra_headers": {"Idempotency-Key": "once-1"}}
    first = sdk.chat.completions.with_raw_response.create(**sent)
    again = sdk.chat.completions.with_raw_response.create(**sent)
    assert again.parse().id == first.parse().id and again.parse().choices == first.parse().choices
    assert again.headers["x-creditflow-charged-micros"] == first.headers["x-creditflow-charged-micros"]
    assert json.loads(again.text)["creditflow"]["replayed"] is True and "replayed" not in json.loads(first.text)[
        "creditflow"]
    streamed = list(sdk.chat.completions.create(**sent, stream=True))  # streamed, the same answer, the same id
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        first.parse().choices[0].message.content
    assert {c.id for c in streamed} == {first.parse().id}
    sends: list[httpx.Request] = []
    counted = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=2,
                            http_client=httpx.Client(event_hooks={"request": [sends.append]}))
    with pytest.raises(openai.ConflictError) as other:
        counted.chat.completions.create(**{**sent, "messages": [{"role": "user", "content": "something else"}]})
    assert other.value.response.headers["x-should-retry"] == "false" and other.value.code == "idempotency_conflict"
    assert other.value.body["message"].startswith("this Idempotency-Key was used for another request")
    assert len(sends) == 1  # not retried: the SDK retries a 409 unless told not to
    entries = server.call("GET", "/api/v1/credits/history", token=server.token("gw-retried")).json["entries"]
    assert [e["kind"] for e in entries].count("settle") == 1


def test_a_replay_says_when_its_answer_was_first_given_and_a_stream_keeps_its_id(server: LocalServer) -> None:
    """A replay is the first answer, down to OpenAI's `created` (when it was answered, not when it was asked
    again) and, streamed, the chunks' id: a client that files answers by id or time finds one answer, not two."""
    sdk = client(server, new_key(server, "gw-created"))
    whole = {"model": "demo-chat", "messages": HI, "extra_headers": {"Idempotency-Key": "created-1"}}
    streamed = {"model": "demo-chat", "messages": [{"role": "user", "content": "streamed"}],
                "extra_headers": {"Idempotency-Key": "created-2"}, "stream": True}
    first, chunks = sdk.chat.completions.create(**whole), list(sdk.chat.completions.create(**streamed))
    time.sleep(1.1)  # the replays are asked a second later
    again, chunks_again = sdk.chat.completions.create(**whole), list(sdk.chat.completions.create(**streamed))
    assert again.id == first.id and again.created == first.created
    assert first.id.startswith("chatcmpl-") and chunks[0].id.startswith("chatcmpl-")  # OpenAI's form, both ways
    assert {c.id for c in chunks_again} == {chunks[0].id} == {c.id for c in chunks}
    assert {c.created for c in chunks_again} == {chunks[0].created}
    other = list(sdk.chat.completions.create(**{**streamed, "extra_headers": {"Idempotency-Key": "created-3"}}))
    assert other[0].id != chunks[0].id  # another key, another answer


def test_a_slow_streams_replay_says_the_created_its_first_chunk_said(real: LocalServer) -> None:
    """A stream is kept at its end: kept with that time, its replay said a `created` seconds after the first."""
    sdk = client(real, new_key(real, "gw-slow-created"))
    streamed = {"model": LLAMA, "messages": [{"role": "user", "content": "DRIP one two three"}], "stream": True,
                "extra_headers": {"Idempotency-Key": "slow-created-1"}}
    chunks = list(sdk.chat.completions.create(**streamed))  # 0.3 s a word: over a second from first to last
    again = list(sdk.chat.completions.create(**streamed))
    assert {c.created for c in again} == {c.created for c in chunks} and len({c.created for c in chunks}) == 1


def test_a_request_sent_again_while_it_runs_is_told_to_ask_again_soon(real: LocalServer,
                                                                     upstream: FakeOpenAI) -> None:
    """Not answered twice, but not final either: the first attempt may yet be cut off and released, and then the
    same request is answered. The SDK obeys x-should-retry and Retry-After; once the first is answered, its answer
    is given again."""
    import threading

    key = new_key(real, "gw-twice")
    asked = {"model": LLAMA, "messages": [{"role": "user", "content": "SLOWLLAMA please"}]}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "twice-1"}
    sent, replies = len(upstream.requests), []
    first = threading.Thread(target=lambda: replies.append(real.call("POST", "/v1/chat/completions", asked,
                                                                     headers=headers)))
    first.start()
    while len(upstream.requests) == sent:  # the first request reached the provider, which takes 3 s
        time.sleep(0.02)
    running = real.call("POST", "/v1/chat/completions", asked, headers=headers)
    assert running.status == 409 and running.json["error"]["code"] == "request_in_progress"
    assert (running.headers["x-should-retry"], running.headers["Retry-After"]) == ("true", "2")
    first.join()
    answered = real.call("POST", "/v1/chat/completions", asked, headers=headers)
    assert answered.status == 200 and answered.json["choices"] == replies[0].json["choices"]
    assert answered.json["id"] == replies[0].json["id"] and answered.json["creditflow"]["replayed"] is True
    assert len(upstream.requests) == sent + 1  # answered once


@pytest.mark.parametrize("limits", [{"max_tokens": 5, "max_completion_tokens": None},
                                    {"max_tokens": None, "max_completion_tokens": 5}])
def test_a_null_token_limit_leaves_the_other_one_in_force(server: LocalServer, limits: dict) -> None:
    """Clients that write every field send the one they leave unset as null: the limit that is set still caps
    the reply, and so what it is held and charged for."""
    key = new_key(server, "gw-capped")
    reply = server.call("POST", "/v1/chat/completions", {"model": "demo-chat", "messages": HI, **limits},
                        headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 200, reply.body
    assert reply.json["usage"]["completion_tokens"] <= 5


def test_unknown_addresses_under_v1_get_openai_errors(server: LocalServer) -> None:
    sdk = client(server, new_key(server, "gw-lost"))
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.images.edit(image=b"not served", prompt="a cat", model="demo-image")
    assert missing.value.body["message"] == "Invalid URL (POST /v1/images/edits)"
    for method, path in (("GET", "/v1/chat/completions"), ("DELETE", "/v1/models"), ("POST", "/v1/nowhere"),
                         ("POST", "/v1/models/demo-chat")):
        reply = server.call(method, path)
        assert reply.status == 404 and reply.json["error"]["type"] == "invalid_request_error", (method, path)


def test_revoked_keys_and_key_limits(server: LocalServer) -> None:
    key = new_key(server, "gw-limited", limit="0.000001")
    with pytest.raises(openai.APIStatusError) as limited:
        client(server, key).chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "x"}])
    # OpenAI's status and code for it (the SDK's RateLimitError), told not to retry: credit, not time, gets past it
    assert limited.value.status_code == 429 and limited.value.body["code"] == "insufficient_quota"
    assert isinstance(limited.value, openai.RateLimitError) and limited.value.response.headers["x-should-retry"] == \
        "false"
    token = server.token("gw-limited")
    key_id = server.call("GET", "/api/v1/keys", token=token).json["keys"][0]["id"]
    assert server.call("DELETE", f"/api/v1/keys/{key_id}", token=token).json["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        client(server, key).models.list()
    again = server.call("DELETE", f"/api/v1/keys/{key_id}", token=token)  # a retry whose answer was lost
    assert again.status == 200 and again.json["revoked"] is True
    stranger = server.call("DELETE", f"/api/v1/keys/{key_id}", token=server.token("someone-else"))
    assert stranger.status == 404 and stranger.json["type"].endswith("/unknown-key")


def test_a_keys_limit_counts_its_embeddings_too(server: LocalServer) -> None:
    """Every call through a key spends against its limit, embeddings as chat: refused past it, counted within it."""
    words = "hello " * 200  # held for more than one micro-credit
    limited = client(server, new_key(server, "gw-embed-capped", limit="0.000001"))
    with pytest.raises(openai.RateLimitError) as refused:
        limited.embeddings.create(model="demo-embed", input=words)
    assert refused.value.body["code"] == "insufficient_quota"
    secret = new_key(server, "gw-embed-capped", credits=None, limit="1")
    raw = client(server, secret).embeddings.with_raw_response.create(model="demo-embed", input=words)
    keys = server.call("GET", "/api/v1/keys", token=server.token("gw-embed-capped")).json["keys"]
    spent = {k["prefix"]: k["spent"]["micros"] for k in keys}
    assert spent[secret[:10]] == int(raw.headers["x-creditflow-charged-micros"]) > 0
    assert sorted(spent.values())[0] == 0


def test_a_clients_key_names_no_task_of_the_platform(server: LocalServer) -> None:
    """A client's Idempotency-Key is kept under the metered calls' prefix: one written as a task's key
    (`task:{id}`) takes no key of that task, and its entries are the call's, not a task's."""
    sdk = client(server, new_key(server, "gw-task-like"))
    sdk.chat.completions.create(model="demo-chat", messages=HI, extra_headers={"Idempotency-Key": "task:t1"})
    entries = server.call("GET", "/api/v1/credits/history", token=server.token("gw-task-like")).json["entries"]
    assert [(e["kind"], e.get("task")) for e in entries] == [("settle", None), ("hold", None), ("grant", None)]


def test_a_retry_through_a_key_at_its_limit_gets_its_first_answer(server: LocalServer) -> None:
    """A replay costs nothing, so a key spent down to its limit still gets its answer again: the key's limit is
    asked only of a hold that is new."""
    import re

    probe = new_key(server, "gw-spent-key", limit="0.000001")
    with pytest.raises(openai.APIStatusError) as told:
        client(server, probe).chat.completions.create(model="demo-chat", messages=HI)
    estimate = re.search(r"may cost ([0-9.]+)", told.value.body["message"])
    assert estimate is not None
    sdk = client(server, new_key(server, "gw-spent-key", credits=None, limit=estimate.group(1)))
    sent = {"model": "demo-chat", "messages": HI, "extra_headers": {"Idempotency-Key": "capped-1"}}
    first = sdk.chat.completions.with_raw_response.create(**sent)
    with pytest.raises(openai.APIStatusError) as spent:  # what it charged leaves less than a new call's estimate
        sdk.chat.completions.create(model="demo-chat", messages=HI)
    assert spent.value.status_code == 429
    again = sdk.chat.completions.with_raw_response.create(**sent)
    assert again.parse().id == first.parse().id and json.loads(again.text)["creditflow"]["replayed"] is True
    entries = server.call("GET", "/api/v1/credits/history", token=server.token("gw-spent-key")).json["entries"]
    assert [e["kind"] for e in entries].count("settle") == 1


def test_streamed_chunks_name_the_model_that_answered(real: LocalServer) -> None:
    """With model "auto", the model is routing's choice (the user's preferred model, or the next one when the first
    fails): every chunk names the one that answered, as the whole reply does."""
    sdk = client(real, new_key(real, "gw-routed"))
    fell_back = list(sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "FAILLLAMA"}],
                                                 stream=True))
    assert {chunk.model for chunk in fell_back} == {VISION}
    preferred = real.call("PUT", "/api/v1/me/preferences", {"preferredModel": VISION},
                          token=real.token("gw-routed"))
    assert preferred.status == 200, preferred.body
    whole = sdk.chat.completions.create(model="auto", messages=HI)
    chunks = list(sdk.chat.completions.create(model="auto", messages=HI, stream=True))
    assert whole.model == VISION and {chunk.model for chunk in chunks} == {VISION}


def test_the_demo_keeps_to_tool_choice_stop_and_max_tokens(server: LocalServer) -> None:
    """An app built against `make run` meets what a real model does: tool_choice obeyed, stop sequences end the
    reply, and a reply cut at max_tokens says "length" (a schema asking for a hundred million items included)."""
    sdk = client(server, new_key(server, "gw-demo-rules"))
    tools = [{"type": "function", "function": {"name": "arithmetic", "parameters": {"type": "object"}}},
             {"type": "function", "function": {"name": "person", "parameters": {
                 "type": "object", "required": ["name", "age"],
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}}}}}]
    asked = [{"role": "user", "content": "what is 2+2"}]
    none = sdk.chat.completions.create(model="demo-chat", messages=asked, tools=tools, tool_choice="none")
    assert not none.choices[0].message.tool_calls and none.choices[0].finish_reason == "stop"
    named = sdk.chat.completions.create(model="demo-chat", messages=asked, tools=tools,
                                        tool_choice={"type": "function", "function": {"name": "person"}})
    call = named.choices[0].message.tool_calls[0]
    assert call.function.name == "person" and json.loads(call.function.arguments) == {"name": "demo", "age": 18}
    required = sdk.chat.completions.create(model="demo-chat", messages=HI, tools=tools, tool_choice="required")
    assert required.choices[0].message.tool_calls and required.choices[0].finish_reason == "tool_calls"
    stopped = sdk.chat.completions.create(model="demo-chat", messages=HI, stop=["not"])
    assert stopped.choices[0].message.content == "[demo reply, "
    short = sdk.chat.completions.create(model="demo-chat", messages=HI, max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    started = time.monotonic()
    huge = sdk.chat.completions.create(model="demo-chat", messages=HI, max_tokens=50, response_format={
        "type": "json_schema", "json_schema": {"name": "many", "schema": {
            "type": "array", "minItems": 100_000_000, "items": {"type": "string"}}}})
    assert huge.choices[0].finish_reason == "length" and len(huge.choices[0].message.content) <= 150
    assert time.monotonic() - started < 5
    unset = sdk.chat.completions.create(model="demo-chat", messages=HI, n=None, seed=7.0,  # type: ignore[arg-type]
                                        extra_body={"n": 1.0})  # null is unset, 1.0 is 1 (as JSON Schema reads it)
    assert unset.choices[0].message.content.startswith("[demo")


def test_making_a_key_is_idempotent_with_an_idempotency_key(server: LocalServer) -> None:
    token = server.token("gw-retry")
    made = [server.call("POST", "/api/v1/keys", {"name": "ci", "limit": "2"}, token=token,
                        headers={"Idempotency-Key": "ci-key-1"}) for _ in range(2)]
    assert [m.status for m in made] == [200, 200] and made[0].json == made[1].json
    assert [k["id"] for k in server.call("GET", "/api/v1/keys", token=token).json["keys"]] == [made[0].json["id"]]
    assert client(server, made[1].json["key"]).models.list().data  # the secret a retry got works
    other = server.call("POST", "/api/v1/keys", {"name": "ci", "limit": "3"}, token=token,
                        headers={"Idempotency-Key": "ci-key-1"})
    assert other.status == 409 and other.content_type == "application/problem+json"
    assert "limit" in other.json["detail"]
    assert len(server.call("GET", "/api/v1/keys", token=token).json["keys"]) == 1


def test_a_key_spends_only_its_owners_credits(server: LocalServer) -> None:
    poor_key = new_key(server, "gw-poor", credits=None)
    with pytest.raises(openai.APIStatusError) as refused:
        client(server, poor_key).chat.completions.create(model="demo-chat",
                                                         messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 429 and refused.value.body["type"] == "insufficient_quota"


def test_a_burst_of_a_thousand_requests_never_spends_more_than_the_balance(tmp_path) -> None:
    import sqlite3
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    burst = LocalServer(tmp_path / "data", RATE_LIMIT_PER_MINUTE="100000")
    try:
        probe = new_key(burst, "probe", credits="1")
        client(burst, probe).chat.completions.create(model="demo-chat", max_tokens=16,
                                                     messages=[{"role": "user", "content": "burst"}])
        # Size the balance from what one call holds (its estimate), as the probe user's history shows.
        history = burst.call("GET", "/api/v1/credits/history?kind=hold", token=burst.token("probe")).json
        held = history["entries"][0]["amount"]["micros"]
        key = new_key(burst, "burst", credits=f"{10 * held / 1_000_000:.6f}")

        def call(n: int) -> int:
            request = urllib.request.Request(
                f"{burst.url}/v1/chat/completions", method="POST",
                data=json.dumps({"model": "demo-chat", "max_tokens": 16,
                                 "messages": [{"role": "user", "content": "burst"}]}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(call, range(1000)))
        # 429: past the user's model calls in flight (MAX_CALLS_PER_CALLER); such a call is refused before any hold
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 10
        balance = burst.call("GET", "/api/v1/credits/balance", token=burst.token("burst")).json
        assert balance["held"]["micros"] == 0 and balance["available"]["micros"] >= 0
        with sqlite3.connect(burst.data / "ledger.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM holds WHERE status = 'pending'").fetchone()[0] == 0
            charged = db.execute("SELECT coalesce(sum(settled), 0) FROM holds WHERE account = 'user:burst'"
                                 ).fetchone()[0]
        assert charged <= 10 * held
        audit = burst.call("GET", "/api/v1/credits/audit", token=burst.token("root", admin=True)).json
        assert audit["ok"] and audit["totals"]["sum"]["micros"] == 0
    finally:
        burst.stop()


def test_langchain_openai_spends_through_the_gateway(server: LocalServer) -> None:
    from langchain_openai import ChatOpenAI

    key = new_key(server, "gw-langchain")
    chat = ChatOpenAI(base_url=f"{server.url}/v1", api_key=key, model="demo-chat", max_retries=0,
                      stream_usage=True)  # with a custom base URL, usage on streams needs stream_usage
    answer = chat.invoke("hello from langchain")
    assert answer.content.startswith("[demo") and answer.usage_metadata["total_tokens"] > 0
    pieces = list(chat.stream("hello from langchain"))
    streamed = pieces[0]
    for piece in pieces[1:]:
        streamed += piece
    assert streamed.content == answer.content
    assert streamed.usage_metadata is not None and streamed.usage_metadata["output_tokens"] > 0
    token = server.token("gw-langchain")
    spent = server.call("GET", "/api/v1/keys", token=token).json["keys"][0]["spent"]["micros"]
    balance = server.call("GET", "/api/v1/credits/balance", token=token).json
    assert spent > 0 and balance["available"]["micros"] == 5_000_000 - spent and balance["held"]["micros"] == 0


WEATHER = [{"type": "function", "function": {"name": "weather", "description": "the weather in a city",
                                             "parameters": {"type": "object",
                                                            "properties": {"q": {"type": "string"}}}}}]


def test_tools_pass_through_plain_and_streamed(real: LocalServer, upstream: FakeOpenAI) -> None:
    sdk = client(real, new_key(real, "gw-tools"))
    assert sdk.models.retrieve(LLAMA).id == LLAMA  # an id with a slash in it
    asked = [{"role": "user", "content": "weather in Oslo?"}]
    raw = sdk.chat.completions.with_raw_response.create(model=LLAMA, messages=asked, tools=WEATHER,
                                                        tool_choice="auto", temperature=0.2)
    first = raw.parse()
    assert upstream.requests[-1]["tools"] == WEATHER and upstream.requests[-1]["tool_choice"] == "auto"
    assert upstream.requests[-1]["temperature"] == 0.2
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and first.choices[0].message.content is None
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"q": "weather in Oslo?"}
    assert int(raw.headers["x-creditflow-charged-micros"]) == 33  # 100 in, 50 out, as the upstream reported
    answered = sdk.chat.completions.create(model=LLAMA, tools=WEATHER, messages=[
        *asked, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert answered.choices[0].message.content == "echo: tool said: sunny"
    chunks = list(sdk.chat.completions.create(model=LLAMA, messages=asked, tools=WEATHER, stream=True,
                                              stream_options={"include_usage": True}))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "weather"
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"q": "weather in Oslo?"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.prompt_tokens == 100 and chunks[-1].creditflow["charged_micros"] == 33
    balance = real.call("GET", "/api/v1/credits/balance", token=real.token("gw-tools")).json
    assert balance["available"]["micros"] == 5_000_000 - 3 * 33 and balance["held"]["micros"] == 0
    with pytest.raises(openai.BadRequestError) as several:
        sdk.chat.completions.create(model=LLAMA, messages=asked, n=2)
    assert several.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):  # a tool result must say which call it answers
        sdk.chat.completions.create(model=LLAMA, messages=[{"role": "tool", "content": "sunny"}])


@pytest.mark.parametrize("carrier", ["function_call", "refusal", "part"])
def test_every_member_of_a_message_passed_on_is_in_the_hold(real: LocalServer, upstream: FakeOpenAI,
                                                            carrier: str) -> None:
    """Messages go to the provider as sent, every member with them, and the provider reads the text of each as
    prompt tokens (a legacy `function_call`'s arguments, a `refusal`, a member of a content part). A hold that
    counted only the members it knew let a call pass 30,000 characters with its prompt for the price of "hi",
    since a charge never passes its hold."""
    uid = f"gw-members-{carrier}"
    sdk = client(real, new_key(real, uid))
    text = "the notes say: " + "lorem ipsum dolor sit amet " * 1100  # 30,000 characters
    said: dict[str, Any] = {"role": "assistant", "content": "noted"}
    if carrier == "function_call":
        said["function_call"] = {"name": "notes", "arguments": text}
    elif carrier == "refusal":
        said["refusal"] = text
    else:
        said["content"] = [{"type": "text", "text": "noted", "notes": text}]
    sdk.chat.completions.create(model=LLAMA, max_tokens=1, messages=[
        {"role": "user", "content": "take notes"}, said, {"role": "user", "content": "what do they say?"}])
    assert text in json.dumps(upstream.requests[-1]["messages"])  # passed on, as sent
    held = real.call("GET", "/api/v1/credits/history?kind=hold", token=real.token(uid)).json["entries"][0]
    assert held["amount"]["micros"] >= token_cost(estimate_tokens([text]), 130_000)


def test_a_request_the_provider_rejects_gets_its_error_and_costs_nothing(real: LocalServer,
                                                                         upstream: FakeOpenAI) -> None:
    sdk = client(real, new_key(real, "gw-rejected"))
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as rejected:
            sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "UNSAFE"}],
                                        stream=stream)
        assert rejected.value.code == "content_policy_violation"
        assert upstream.requests[-1]["model"] == LLAMA  # not passed on to the next model
    with pytest.raises(openai.BadRequestError) as unsafe:
        sdk.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "UNSAFE"}])
    assert unsafe.value.code == "content_policy_violation" and "safety system" in unsafe.value.body["message"]
    for n, stream in enumerate((False, True)):
        problem = real.call("POST", "/api/v1/chat", {"messages": [{"role": "user", "content": "UNSAFE"}],
                                                      "stream": stream},
                            token=real.token("gw-rejected"), headers={"Idempotency-Key": f"unsafe-{n}"})
        assert problem.status == 400 and problem.headers["Content-Type"] == "application/problem+json"
        assert problem.json["type"].endswith("/provider-rejected-request") and "safety" in problem.json["detail"]
    balance = real.call("GET", "/api/v1/credits/balance", token=real.token("gw-rejected")).json
    assert balance["available"]["micros"] == 5_000_000 and balance["held"]["micros"] == 0


def test_a_stream_the_provider_cuts_off_ends_in_an_error_event_not_a_clean_stop(real: LocalServer) -> None:
    """As OpenAI does when a stream fails part way: an error event, which the SDK raises, after what was said."""
    sdk = client(real, new_key(real, "gw-cut"))
    said, usage = [], None
    asked = [{"role": "user", "content": "BREAKSTREAM after two"}]  # the provider cuts it after two pieces
    with pytest.raises(openai.APIError) as cut:
        for chunk in sdk.chat.completions.create(model=LLAMA, messages=asked, stream=True,
                                                 stream_options={"include_usage": True}):
            said.extend(c.delta.content or "" for c in chunk.choices)
            assert all(c.finish_reason is None for c in chunk.choices)  # never a finish that says all is well
            usage = chunk.usage or usage
    assert "".join(said) == "echo: BREAKSTREAM" and "broke off" in str(cut.value)
    assert usage is not None and usage.completion_tokens > 0  # what it was charged for, estimated
    settle = real.call("GET", "/api/v1/credits/history?kind=settle", token=real.token("gw-cut")).json["entries"][0]
    assert settle["memo"]["reconcile"] == "stream broke" and settle["amount"]["micros"] > 0


def test_a_stream_cut_only_after_its_usage_ends_as_the_provider_finished_it(real: LocalServer) -> None:
    """Finished, with its usage said: the provider's connection lost before [DONE] takes nothing from the answer."""
    sdk = client(real, new_key(real, "gw-cut-late"))
    asked = [{"role": "user", "content": "CUTATEND please"}]
    chunks = list(sdk.chat.completions.create(model=LLAMA, messages=asked, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices) == "echo: CUTATEND please"
    assert [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (100, 50)
    settle = real.call("GET", "/api/v1/credits/history?kind=settle", token=real.token("gw-cut-late")).json["entries"][0]
    assert settle["memo"]["usage"] == "reported" and "reconcile" not in settle["memo"]


def test_images_need_a_vision_model_and_are_held_for(real: LocalServer, upstream: FakeOpenAI) -> None:
    sdk = client(real, new_key(real, "gw-vision"))
    png = "data:image/png;base64," + base64.b64encode(encoded(halves(80, 40), "PNG")).decode()
    picture = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                            {"type": "image_url", "image_url": {"url": png}}]}]
    with pytest.raises(openai.BadRequestError) as blind:  # Llama reads no images: on offer, but not for this
        sdk.chat.completions.create(model=LLAMA, messages=picture)
    assert blind.value.code == "model_not_capable"
    seen = sdk.chat.completions.create(model="auto", messages=picture)
    assert seen.model == VISION and upstream.requests[-1]["messages"] == picture  # checked, and small enough as sent
    held = real.call("GET", "/api/v1/credits/history?kind=hold", token=real.token("gw-vision")).json["entries"]
    assert held[0]["memo"]["model"] == VISION  # the image is in the estimate the hold was sized by:
    assert held[0]["amount"]["micros"] >= token_cost(2 + 3 * 2, 130_000)  # its 80 × 40 image in 28-pixel tiles


def test_embeddings_are_metered(server: LocalServer, real: LocalServer, upstream: FakeOpenAI) -> None:
    sdk = client(server, new_key(server, "gw-embed"))
    raw = sdk.embeddings.with_raw_response.create(model="demo-embed", input=[
        "credits held before the call", "the call holds credits first", "penguins swim in cold water"])
    out = raw.parse()  # the SDK asks for base64 and decodes it
    a, b, c = (item.embedding for item in out.data)
    assert len(a) == 256 and out.usage.prompt_tokens > 0
    assert dot(a, b) > dot(a, c)  # shared words, closer vectors
    charged = int(raw.headers["x-creditflow-charged-micros"])
    assert charged == token_cost(out.usage.prompt_tokens, 20_000)
    plain = real_post(server, new_key(server, "gw-embed-2"), "/v1/embeddings",
                      {"model": "demo-embed", "input": "hello", "encoding_format": "float"})
    assert plain["data"][0]["embedding"][:3] == [pytest.approx(x) for x in sdk.embeddings.create(
        model="demo-embed", input="hello").data[0].embedding[:3]]
    for bad in ({"model": "demo-embed", "input": []}, {"model": "demo-embed", "input": [1, 2, 3]},
                {"model": "demo-embed", "input": "x", "dimensions": 8}, {"model": "", "input": "x"}):
        with pytest.raises(openai.BadRequestError):
            sdk.embeddings.create(**bad)
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="demo-chat", input="a chat model does not embed")
    balance = server.call("GET", "/api/v1/credits/balance", token=server.token("gw-embed")).json
    assert balance["available"]["micros"] == 5_000_000 - charged - token_cost(estimate_tokens(["hello"]), 20_000)
    upstreamed = client(real, new_key(real, "gw-embed-real")).embeddings.with_raw_response.create(
        model="BAAI/bge-en-icl", input="four words right here")
    assert upstreamed.parse().usage.prompt_tokens == 4 and upstream.requests[-1]["input"] == ["four words right here"]
    assert int(upstreamed.headers["x-creditflow-charged-micros"]) == token_cost(4, 10_000)


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def real_post(server: LocalServer, key: str, path: str, body: dict) -> dict:
    reply = server.call("POST", path, body, headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 200, reply.body
    return reply.json


def test_concurrent_calls_never_pass_a_keys_limit(server: LocalServer) -> None:
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    probe = client(server, new_key(server, "gw-limit-probe"))
    probe.chat.completions.create(model="demo-chat", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    history = server.call("GET", "/api/v1/credits/history?kind=hold", token=server.token("gw-limit-probe")).json
    held = history["entries"][0]["amount"]["micros"]
    key = new_key(server, "gw-limit", credits="5", limit=f"{3 * held / 1_000_000:.6f}")

    def call(n: int) -> int:
        try:
            client(server, key).chat.completions.create(model="demo-chat", max_tokens=16,
                                                        messages=[{"role": "user", "content": "x"}])
            return 200
        except openai.APIStatusError as error:
            return error.status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(call, range(60)))
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 3
    listed = server.call("GET", "/api/v1/keys", token=server.token("gw-limit")).json["keys"][0]
    assert listed["spent"]["micros"] <= listed["limit"]["micros"]
    with sqlite3.connect(server.data / "api_keys.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM api_key_calls WHERE key_id = ?", (listed["id"],)).fetchone()[0] == 0
    balance = server.call("GET", "/api/v1/credits/balance", token=server.token("gw-limit")).json
    assert 5_000_000 - balance["available"]["micros"] == listed["spent"]["micros"]


def test_the_gateway_shares_the_users_rate_limit_and_each_key_has_its_own(tmp_path) -> None:
    limited = LocalServer(tmp_path / "data", RATE_LIMIT_PER_MINUTE="4", KEY_RATE_LIMIT_PER_MINUTE="2")
    try:
        first = client(limited, new_key(limited, "gw-hasty"))  # making a key takes one of the user's four
        first.models.list()
        first.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as refused:  # the key's two are gone
            first.models.list()
        assert refused.value.body["code"] == "rate_limit_exceeded"
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        second = client(limited, new_key(limited, "gw-hasty", credits=None))  # the user's fourth
        with pytest.raises(openai.RateLimitError):  # a fresh key, but the user's four are gone
            second.models.list()
        balance = limited.call("GET", "/api/v1/credits/balance", token=limited.token("gw-hasty"))
        assert balance.status == 429  # the same bucket as the REST API
    finally:
        limited.stop()


def test_with_no_model_on_offer_the_list_offers_no_auto_either(tmp_path: Any) -> None:
    """"auto" picks one of the models listed: with none (a deployment with no provider yet), listing it promised a
    model every call to it would be told does not exist."""
    from creditflow.entrypoints.http.app import create_app
    from tests.conftest import make_platform

    platform = make_platform(tmp_path / "data")
    secret, _ = platform.keys.create("nobody-served", "k", None)
    platform.chat.catalog.models = lambda *args, **kwargs: []  # type: ignore[method-assign]
    listed = create_app(platform).test_client().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert listed.status_code == 200 and listed.get_json() == {"object": "list", "data": []}
