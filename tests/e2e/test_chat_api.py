"""POST /api/v1/chat over real HTTP: the offline demo, and a real OpenAI-compatible upstream."""

from __future__ import annotations

import time

import pytest

from tests.e2e.server import LocalServer
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def fund(server: LocalServer, uid: str, credits: str) -> str:
    server.call("POST", "/api/v1/admin/grants", {"uid": uid, "amount": credits},
                token=server.token("root", admin=True), headers={"Idempotency-Key": f"fund-{uid}"})
    return server.token(uid)


def test_demo_chat_with_nothing_configured(server: LocalServer) -> None:
    token = fund(server, "chatty", "1")
    models = server.call("GET", "/api/v1/models", token=token).json["models"]
    assert [(m["id"], m["demo"], m["capabilities"]) for m in models] == [("demo-chat", True, ["chat"]),
                                                                       ("demo-vision", True, ["vision"]),
                                                                       ("demo-embed", True, ["embedding"]),
                                                                       ("demo-image", True, ["image"])]
    reply = server.call("POST", "/api/v1/chat", {"messages": [{"role": "user", "content": "hi"}]}, token=token,
                        headers={"Idempotency-Key": "chat-1"})
    assert reply.status == 200 and reply.json["demo"] is True and reply.json["text"].startswith("[demo")
    charged = reply.json["charged"]["micros"]
    balance = server.call("GET", "/api/v1/credits/balance", token=token).json
    assert balance["available"]["micros"] == 1_000_000 - charged and balance["held"]["micros"] == 0


def test_a_provider_call_is_metered_from_reported_usage(real: LocalServer, upstream: FakeOpenAI) -> None:
    token = fund(real, "payer", "1")
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hello"}]},
                      token=token, headers={"Idempotency-Key": "p-1"})
    assert reply.status == 200, reply.body
    assert reply.json["usage"] == {"promptTokens": 100, "completionTokens": 50, "reportedByProvider": True}
    assert reply.json["charged"] == {"credits": "0.000033", "micros": 33} and reply.json["demo"] is False
    assert upstream.requests[-1]["model"] == LLAMA


def test_provider_failure_is_a_502_problem_and_costs_nothing(real: LocalServer) -> None:
    token = fund(real, "unlucky", "1")
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "FAIL500"}]},
                      token=token, headers={"Idempotency-Key": "u-1"})
    assert reply.status == 502 and reply.content_type == "application/problem+json"
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000, 0)


def test_an_unaffordable_call_is_refused_before_the_provider(real: LocalServer, upstream: FakeOpenAI) -> None:
    token = real.token("broke")
    before = len(upstream.requests)
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
                      token=token, headers={"Idempotency-Key": "b-1"})
    assert reply.status == 402 and reply.json["shortfall"]["micros"] > 0
    # this server has no Stripe keys: the packs are listed, and no method offered that could only fail
    assert reply.json["paymentMethods"] == [] and reply.json["packs"][0]["price"]["amount"] > 0
    assert len(upstream.requests) == before


@pytest.mark.parametrize(("body", "status"), [
    ({"messages": []}, 400),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "maxTokens": 10**9}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "model": "no/such"}, 404),
])
def test_bad_chat_requests(real: LocalServer, body: dict, status: int) -> None:
    token = fund(real, "careful", "1")
    reply = real.call("POST", "/api/v1/chat", body, token=token, headers={"Idempotency-Key": "bad-1"})
    assert reply.status == status and reply.content_type == "application/problem+json"


def read_events(reply_body: bytes) -> list[tuple[str, dict]]:
    import json

    events = []
    for block in reply_body.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if not lines:
            continue
        kind = next((line[7:] for line in lines if line.startswith("event: ")), "message")
        data = next(line[6:] for line in lines if line.startswith("data: "))
        events.append((kind, json.loads(data)))
    return events


def test_a_streamed_chat_over_http(real: LocalServer, upstream: FakeOpenAI) -> None:
    token = fund(real, "streamer", "1")
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "stream": True,
                                               "messages": [{"role": "user", "content": "stream this"}]},
                      token=token, headers={"Idempotency-Key": "st-1"})
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream")
    events = read_events(reply.body)
    assert "".join(data["delta"] for kind, data in events if kind == "message") == "echo: stream this"
    kind, done = events[-1]
    assert kind == "done" and done["charged"] == {"credits": "0.000033", "micros": 33}
    assert done["usage"]["reportedByProvider"] is True and "_" not in "".join(done)
    assert upstream.requests[-1]["stream"] is True
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000 - 33, 0)


def test_a_client_that_leaves_a_stream_pays_at_least_its_input(real: LocalServer, upstream: FakeOpenAI) -> None:
    """Over real HTTP: the server notices the client has gone at its next write, stops reading the provider and
    settles the hold on what was said (at least the input), flagged for reconciliation."""
    import http.client
    import json

    token = fund(real, "leaver", "1")
    words = " ".join(["DRIP"] + ["word"] * 40)
    for path, body in (("/api/v1/chat", {"model": LLAMA, "stream": True}),
                       ("/v1/chat/completions", {"model": LLAMA, "stream": True, "max_tokens": 500})):
        key = real.call("POST", "/api/v1/keys", {"name": "leaver"}, token=token).json["key"]
        connection = http.client.HTTPConnection(real.url.removeprefix("http://"), timeout=10)
        connection.request("POST", path, json.dumps({**body, "messages": [{"role": "user", "content": words}]}),
                           {"Content-Type": "application/json", "Idempotency-Key": f"leave-{len(path)}",
                            "Authorization": f"Bearer {token if path.startswith('/api') else key}"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert b"data: " in response.readline() + response.readline()  # the first piece
        response.close()  # and away: the socket closes with the last of its users
        connection.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        balance = real.call("GET", "/api/v1/credits/balance", token=token).json
        if balance["held"]["micros"] == 0:
            break
        time.sleep(0.2)
    assert balance["held"]["micros"] == 0  # both holds settled long before they would expire
    settles = real.call("GET", "/api/v1/credits/history?kind=settle", token=token).json["entries"]
    assert len(settles) == 2
    for settle in settles:
        assert settle["memo"]["reconcile"] == "cancelled" and settle["amount"]["micros"] > 0
    assert balance["available"]["micros"] == 1_000_000 - sum(s["amount"]["micros"] for s in settles)


def test_a_retry_is_a_409_problem_while_the_first_runs_then_gets_its_answer(real: LocalServer,
                                                                           upstream: FakeOpenAI) -> None:
    import threading

    token = fund(real, "impatient", "1")
    ask = {"model": LLAMA, "messages": [{"role": "user", "content": "SLOWLLAMA please"}]}
    sent = len(upstream.requests)
    first = threading.Thread(target=real.call, args=("POST", "/api/v1/chat", ask),
                             kwargs={"token": token, "headers": {"Idempotency-Key": "twice-1"}})
    first.start()
    while len(upstream.requests) == sent:  # the first request reached the provider, which takes 3 s
        time.sleep(0.02)
    again = real.call("POST", "/api/v1/chat", ask, token=token, headers={"Idempotency-Key": "twice-1"})
    first.join()
    assert again.status == 409 and again.content_type == "application/problem+json"
    assert again.json["type"].endswith("/request-in-progress") and "still running" in again.json["detail"]
    assert again.headers["Retry-After"] == "2"  # the first may yet be cut off and released: ask again soon
    assert len(upstream.requests) == sent + 1
    answered = real.call("POST", "/api/v1/chat", ask, token=token, headers={"Idempotency-Key": "twice-1"})
    assert answered.status == 200 and answered.json["replayed"] is True and answered.json["charged"]["micros"] == 33
    assert answered.json["text"] and answered.json["entry"] is not None  # its first answer, given again
    other = real.call("POST", "/api/v1/chat", {**ask, "maxTokens": 7}, token=token,
                      headers={"Idempotency-Key": "twice-1"})
    assert other.status == 409 and other.json["type"].endswith("/idempotency-conflict")
    assert len(upstream.requests) == sent + 1
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000 - 33, 0)


def test_a_stream_whose_provider_is_down_is_a_502_problem(real: LocalServer) -> None:
    token = fund(real, "down", "1")
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "stream": True,
                                               "messages": [{"role": "user", "content": "FAIL500"}]},
                      token=token, headers={"Idempotency-Key": "dn-1"})
    assert reply.status == 502 and reply.content_type == "application/problem+json"
    assert real.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"] == 1_000_000


def test_preferences_over_http(real: LocalServer) -> None:
    token = fund(real, "picky", "1")
    assert real.call("GET", "/api/v1/me/preferences", token=token).json == {
        "preferredModel": None, "maxCreditsPerRequest": None, "costSaving": False}
    saved = real.call("PUT", "/api/v1/me/preferences", {"preferredModel": "Qwen/Qwen2.5-VL-72B-Instruct",
                                                        "maxCreditsPerRequest": "0.5"}, token=token)
    assert saved.status == 200 and saved.json["maxCreditsPerRequest"]["micros"] == 500_000
    reply = real.call("POST", "/api/v1/chat", {"messages": [{"role": "user", "content": "hi"}]}, token=token,
                      headers={"Idempotency-Key": "pk-1"})
    assert reply.json["model"] == "Qwen/Qwen2.5-VL-72B-Instruct"
    unknown = real.call("PUT", "/api/v1/me/preferences", {"preferredModel": "no/such"}, token=token)
    assert unknown.status == 404 and unknown.content_type == "application/problem+json"


def test_conversations_over_http(real: LocalServer, upstream: FakeOpenAI) -> None:
    token = fund(real, "talker", "1")
    made = real.call("POST", "/api/v1/conversations", {"title": "trip"}, token=token)
    assert made.status == 200 and made.json["messages"] == 0
    chat_id = made.json["id"]
    for n, text in enumerate(["first", "second"]):
        reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "conversationId": chat_id,
                                                   "messages": [{"role": "user", "content": text}]},
                          token=token, headers={"Idempotency-Key": f"talk-{n}"})
        assert reply.status == 200 and reply.json["conversationId"] == chat_id
    assert upstream.requests[-1]["messages"][:2] == [{"role": "user", "content": "first"},
                                                     {"role": "assistant", "content": "echo: first"}]
    assert reply.json["memory"] == {"buffered": 2, "summarised": 0, "recalled": 0,
                                    "charged": {"credits": "0", "micros": 0}}
    streamed = real.call("POST", "/api/v1/chat", {"model": LLAMA, "conversationId": chat_id, "stream": True,
                                                  "messages": [{"role": "user", "content": "third"}]},
                         token=token, headers={"Idempotency-Key": "talk-2"})
    assert read_events(streamed.body)[-1][1]["memory"]["buffered"] == 4
    detail = real.call("GET", f"/api/v1/conversations/{chat_id}", token=token).json
    assert [(m["role"], m["content"]) for m in detail["history"]][-2:] == [("user", "third"),
                                                                          ("assistant", "echo: third")]
    latest = real.call("GET", f"/api/v1/conversations/{chat_id}?limit=4", token=token).json
    assert [m["seq"] for m in latest["history"]] == [3, 4, 5, 6] and latest["nextCursor"] == "3"
    older = real.call("GET", f"/api/v1/conversations/{chat_id}?limit=4&cursor=3", token=token).json
    assert [m["seq"] for m in older["history"]] == [1, 2] and older["nextCursor"] is None
    assert real.call("GET", f"/api/v1/conversations/{chat_id}?limit=0", token=token).status == 400
    listed = real.call("GET", "/api/v1/conversations?limit=5", token=token).json
    assert [c["id"] for c in listed["conversations"]] == [chat_id] and listed["conversations"][0]["messages"] == 6
    intruder = fund(real, "snoop", "1")
    for method, path in (("GET", f"/api/v1/conversations/{chat_id}"), ("DELETE", f"/api/v1/conversations/{chat_id}")):
        refused = real.call(method, path, token=intruder)
        assert refused.status == 404 and refused.content_type == "application/problem+json"
    theirs = real.call("POST", "/api/v1/chat", {"model": LLAMA, "conversationId": chat_id,
                                                "messages": [{"role": "user", "content": "peek"}]},
                       token=intruder, headers={"Idempotency-Key": "peek"})
    assert theirs.status == 404
    assert real.call("GET", "/api/v1/credits/balance", token=intruder).json["available"]["micros"] == 1_000_000
    bad = real.call("POST", "/api/v1/chat", {"conversationId": "conv_x; drop",
                                             "messages": [{"role": "user", "content": "x"}]},
                    token=token, headers={"Idempotency-Key": "bad-conv"})
    assert bad.status == 400 and bad.content_type == "application/problem+json"
    assert real.call("GET", "/api/v1/conversations?cursor=nope", token=token).status == 400
    assert real.call("DELETE", f"/api/v1/conversations/{chat_id}", token=token).json["deleted"] is True
    assert real.call("GET", f"/api/v1/conversations/{chat_id}", token=token).status == 404
    keyed = [real.call("POST", "/api/v1/conversations", {"title": "again"}, token=token,
                       headers={"Idempotency-Key": "start-again"}) for _ in range(2)]
    assert keyed[0].status == 200 and keyed[0].json == keyed[1].json  # a retry returns the same conversation


def test_admins_override_the_catalog(real: LocalServer) -> None:
    admin, user = real.token("root", admin=True), fund(real, "catalog-user", "1")
    listed = real.call("GET", "/api/v1/admin/models", token=admin).json["models"]
    assert {m["id"]: m["source"] for m in listed}[LLAMA] == "package"
    assert real.call("GET", "/api/v1/admin/models", token=user).status == 403
    repriced = real.call("PUT", "/api/v1/admin/models", {"model": LLAMA, "prices": {
        "inputPerMillion": "1", "outputPerMillion": "2"}}, token=admin)
    assert repriced.status == 200
    llama = next(m for m in repriced.json["models"] if m["id"] == LLAMA)
    assert llama["source"] == "package+override" and llama["inputPerMillion"]["micros"] == 1_000_000
    reply = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
                      token=user, headers={"Idempotency-Key": "priced-1"})
    assert reply.json["charged"]["micros"] == 100 + 100  # 100 in at 1 credit/1M, 50 out at 2 credits/1M
    off = real.call("PUT", "/api/v1/admin/models", {"model": LLAMA, "enabled": False}, token=admin)
    assert next(m for m in off.json["models"] if m["id"] == LLAMA)["enabled"] is False
    assert LLAMA not in [m["id"] for m in real.call("GET", "/api/v1/models", token=user).json["models"]]
    refused = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
                        token=user, headers={"Idempotency-Key": "priced-2"})
    assert refused.status == 404
    added = real.call("PUT", "/api/v1/admin/models", {
        "model": "mistralai/Mistral-Nemo", "provider": "platform", "capabilities": ["chat"], "contextWindow": 4096,
        "maxOutput": 512, "prices": {"inputPerMillion": "0.04", "outputPerMillion": "0.12"}}, token=admin)
    assert {m["id"]: m["source"] for m in added.json["models"]}["mistralai/Mistral-Nemo"] == "override"
    for bad in ({"model": "free/model", "provider": "platform", "capabilities": ["chat"], "contextWindow": 10,
                 "maxOutput": 5},  # no price: never offered free
                {"model": "nowhere/model", "provider": "elsewhere", "capabilities": ["chat"], "contextWindow": 10,
                 "maxOutput": 5, "prices": {"inputPerMillion": "1", "outputPerMillion": "1"}},
                {"model": LLAMA, "prices": {"inputPerMillion": "0", "outputPerMillion": "1"}},
                {"model": LLAMA, "maxOutput": 10**9}, {"model": LLAMA, "surprise": True}):
        before = real.call("GET", "/api/v1/admin/models", token=admin).json
        answer = real.call("PUT", "/api/v1/admin/models", bad, token=admin)
        assert answer.status in (400, 409) and answer.content_type == "application/problem+json", bad
        assert real.call("GET", "/api/v1/admin/models", token=admin).json == before
    incomplete = real.call("PUT", "/api/v1/admin/models", {"model": "new/model"}, token=admin).json
    assert incomplete["type"].endswith("/invalid-model-override"), incomplete  # was invalid-query, a body's fault
    assert "'contextWindow', 'maxOutput'" in incomplete["detail"], incomplete  # the fields as they are sent
    flux = next(m for m in listed if m["id"] == "black-forest-labs/flux-schnell")
    assert flux["capabilities"] == ["image"] and {(p["size"], p["steps"]) for p in flux["imagePrices"]} == {
        ("512x512", 4), ("1024x1024", 4)}
    images = real.call("PUT", "/api/v1/admin/models", {"model": "black-forest-labs/flux-schnell", "prices": {
        "perImage": {"1024x1024": {"4": "0.002"}}}}, token=admin).json["models"]
    assert next(m for m in images if m["id"] == "black-forest-labs/flux-schnell")["imagePrices"] == [
        {"size": "1024x1024", "steps": 4, "price": {"credits": "0.002", "micros": 2000}}]
    unpriced = real.call("PUT", "/api/v1/admin/models", {"model": "black-forest-labs/flux-dev", "prices": {
        "perImage": {}}}, token=admin)
    assert unpriced.status == 409 and unpriced.content_type == "application/problem+json"
    real.call("DELETE", "/api/v1/admin/models?model=black-forest-labs/flux-schnell", token=admin)
    dropped = real.call("DELETE", f"/api/v1/admin/models?model={LLAMA}", token=admin).json["models"]
    assert next(m for m in dropped if m["id"] == LLAMA)["enabled"] is True
    assert real.call("DELETE", f"/api/v1/admin/models?model={LLAMA}", token=admin).status == 404
    real.call("DELETE", "/api/v1/admin/models?model=mistralai/Mistral-Nemo", token=admin)


def test_a_user_has_at_most_so_many_model_calls_in_flight(real: LocalServer, upstream: FakeOpenAI) -> None:
    """Each call in flight holds a server thread until the provider answers: a user may have MAX_CALLS_PER_CALLER
    at once, one more is refused with 429 before any hold or provider call, and another user is still served."""
    from concurrent.futures import ThreadPoolExecutor

    from creditflow.entrypoints.http.app import MAX_CALLS_PER_CALLER

    token, other = fund(real, "eager", "100"), fund(real, "patient", "1")
    slow = {"model": LLAMA, "messages": [{"role": "user", "content": "HELDLLAMA please"}]}
    sent = len(upstream.requests)
    upstream.let_go.clear()
    with ThreadPoolExecutor(MAX_CALLS_PER_CALLER) as pool:
        calls = [pool.submit(real.call, "POST", "/api/v1/chat", slow, token=token,
                             headers={"Idempotency-Key": f"eager-{n}"}) for n in range(MAX_CALLS_PER_CALLER)]
        deadline = time.monotonic() + 20
        while len(upstream.requests) < sent + MAX_CALLS_PER_CALLER and time.monotonic() < deadline:
            time.sleep(0.02)  # every call reached the provider, which holds them until let go
        refused = real.call("POST", "/api/v1/chat", slow, token=token, headers={"Idempotency-Key": "eager-more"})
        served = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
                           token=other, headers={"Idempotency-Key": "patient-1"})
        upstream.let_go.set()
        assert [call.result().status for call in calls] == [200] * MAX_CALLS_PER_CALLER
    assert (refused.status, refused.content_type) == (429, "application/problem+json")
    assert "model calls in flight" in refused.json["detail"] and int(refused.headers["Retry-After"]) >= 1
    assert served.status == 200
    assert len(upstream.requests) == sent + MAX_CALLS_PER_CALLER + 1  # the refused call reached no provider
    holds = real.call("GET", "/api/v1/credits/history?kind=hold&limit=200", token=token).json["entries"]
    assert len(holds) == MAX_CALLS_PER_CALLER
    assert real.call("GET", "/api/v1/credits/balance", token=token).json["held"]["micros"] == 0
    again = real.call("POST", "/api/v1/chat", {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
                      token=token, headers={"Idempotency-Key": "eager-after"})
    assert again.status == 200  # every slot was given back
