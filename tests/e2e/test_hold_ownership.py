"""Holds the platform places for a call belong to that call: a client who finds one in its history and releases it
while the reply is on its way cannot keep the reply unpaid (found by an adversarial run: 10-19 of 120 tries won)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_chat_api import LLAMA, fund, read_events
from tests.fake_openai import FakeOpenAI

RACES = 100  # per surface and mode


class Releaser(threading.Thread):
    """The attacker: watches the caller's history for a new hold and releases it at once."""

    def __init__(self, server: LocalServer, token: str, seen: set[str]) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.seen = server, token, seen
        self.stop = threading.Event()
        self.refusals: list[dict] = []
        self.released: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            page = self.server.call("GET", "/api/v1/credits/history?kind=hold&limit=1", token=self.token).json
            fresh = [e["hold"] for e in page["entries"] if e["hold"] not in self.seen]
            if not fresh:
                continue
            hold = fresh[0]
            self.seen.add(hold)
            reply = self.server.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold},
                                     token=self.token, headers={"Idempotency-Key": f"steal-{hold}"})
            if reply.status == 200:
                self.released.append(hold)
            else:
                self.refusals.append({"status": reply.status, **reply.json})
            return


def known_holds(server: LocalServer, token: str) -> set[str]:
    return {e["hold"] for e in server.call("GET", "/api/v1/credits/history?kind=hold&limit=200",
                                           token=token).json["entries"]}


def call(server: LocalServer, surface: str, stream: bool, token: str, key: str, n: int) -> int:
    """One call on a surface; what the caller was told it was charged (and it must have received the reply)."""
    messages = [{"role": "user", "content": f"PAUSE race {n} with a few more words"}]
    if surface == "api":
        reply = server.call("POST", "/api/v1/chat", {"model": LLAMA, "stream": stream, "messages": messages},
                            token=token, headers={"Idempotency-Key": f"race-{stream}-{n}"})
        assert reply.status == 200, reply.body
        if not stream:
            assert reply.json["text"].startswith("echo:")
            return reply.json["charged"]["micros"]
        events = read_events(reply.body)
        assert "".join(d["delta"] for kind, d in events if kind == "message").startswith("echo:")
        kind, done = events[-1]
        assert kind == "done", events[-1]
        return done["charged"]["micros"]
    body = {"model": LLAMA, "stream": stream, "messages": messages, "max_tokens": 200,
            **({"stream_options": {"include_usage": True}} if stream else {})}
    reply = server.call("POST", "/v1/chat/completions", body,
                        token=key, headers={"Idempotency-Key": f"race-v1-{stream}-{n}"})
    assert reply.status == 200, reply.body
    charged = int(reply.headers.get("x-creditflow-charged-micros") or 0)
    if stream:
        chunks = [json.loads(line[6:]) for line in reply.body.decode().split("\n")
                  if line.startswith("data: {")]
        assert all("error" not in c for c in chunks), chunks[-1]
        charged = next(c["creditflow"]["charged_micros"] for c in chunks if c.get("creditflow"))
    return charged


@pytest.fixture(scope="module")
def racer(real: LocalServer) -> Iterator[tuple[str, str]]:
    token = fund(real, "racer", "50")
    key = real.call("POST", "/api/v1/keys", {"name": "race"}, token=token).json["key"]
    yield token, key


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("surface", ["api", "v1"])
def test_a_client_cannot_release_the_hold_of_its_own_call(real: LocalServer, upstream: FakeOpenAI,
                                                          racer: tuple[str, str], surface: str, stream: bool) -> None:
    token, key = racer
    seen = known_holds(real, token)
    refused = 0
    for n in range(RACES):
        before = real.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"]
        attacker = Releaser(real, token, seen)
        attacker.start()
        charged = call(real, surface, stream, token, key, n)
        attacker.stop.set()
        attacker.join(timeout=10)
        assert attacker.released == [], f"try {n}: the client released its call's hold"
        for refusal in attacker.refusals:
            assert refusal["status"] == 409 and refusal["type"].endswith("/hold-in-use"), refusal
            assert "belongs to a call" in refusal["detail"]
        refused += len(attacker.refusals)
        after = real.call("GET", "/api/v1/credits/balance", token=token).json
        assert charged > 0 and after["available"]["micros"] == before - charged, f"try {n}: charged {charged}"
        assert after["held"]["micros"] == 0
    assert refused >= RACES // 2  # the attacker did reach the hold in flight, most of the time


def test_a_hold_the_client_placed_is_still_the_clients_to_release(real: LocalServer) -> None:
    token = fund(real, "planner", "1")
    hold = real.call("POST", "/api/v1/credits/reserve", {"amount": "0.5", "category": "image"}, token=token,
                     headers={"Idempotency-Key": "mine-1"}).json["reservationId"]
    reply = real.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold}, token=token,
                      headers={"Idempotency-Key": "mine-1-release"})
    assert reply.status == 200 and reply.json["released"]["micros"] == 500_000
