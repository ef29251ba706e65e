"""Images made through /v1/images/generations with an API key: what their task was charged counts against the
key's limit, and the call's count in flight is dropped, as for a chat call through the key."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from creditflow.bootstrap import Platform
from tests.conftest import CREDIT
from tests.services.test_vision import auth, balance, client, seeing

__all__ = ["client", "seeing"]  # the fixtures of the vision tests, shared


def test_an_image_made_through_a_key_counts_what_it_cost_against_the_keys_limit(seeing: Platform,
                                                                                client: Any) -> None:
    headers = auth(seeing, "kim")
    made = client.post("/api/v1/keys", json={"name": "images", "limit": "5"}, headers=headers)
    assert made.status_code in (200, 201), made.json
    gateway = {"Authorization": f"Bearer {made.json['key']}"}
    before = balance(seeing, "kim")
    body = {"model": "demo-image", "prompt": "a red kite", "size": "256x256"}
    for n in range(2):
        done = client.post("/v1/images/generations", json=body, headers={**gateway, "Idempotency-Key": f"kite-{n}"})
        assert done.status_code == 200 and len(done.json["data"]) == 1, done.json
    cost = before - balance(seeing, "kim")
    assert cost > 0
    [key] = seeing.keys.list("kim")
    assert key.limit == 5 * CREDIT and key.spent == cost  # both images, counted once each
    assert seeing.keys.keys.in_flight(key.id, "2026-01-01T00:00:00.000000Z") == 0
    again = client.post("/v1/images/generations", json=body, headers={**gateway, "Idempotency-Key": "kite-1"})
    assert again.status_code == 200, again.json
    # a retry answers from its task: the same image, under a URL signed afresh (its expiry may be a second later)
    assert [urlsplit(d["url"]).path for d in again.json["data"]] == [urlsplit(d["url"]).path for d in done.json["data"]]
    [key] = seeing.keys.list("kim")
    assert key.spent == cost


def test_an_image_that_may_cost_more_than_a_key_has_left_is_refused_before_it_is_made(seeing: Platform,
                                                                                      client: Any) -> None:
    headers = auth(seeing, "lou")
    made = client.post("/api/v1/keys", json={"name": "tight", "limit": "0.00005"}, headers=headers)
    gateway = {"Authorization": f"Bearer {made.json['key']}", "Idempotency-Key": "kite"}
    before = balance(seeing, "lou")
    refused = client.post("/v1/images/generations", json={"model": "demo-image", "prompt": "a red kite",
                                                           "size": "256x256"}, headers=gateway)
    assert refused.status_code == 429 and "limit" in refused.json["error"]["message"], refused.json
    assert balance(seeing, "lou") == before and seeing.credits.balance("lou").held == 0
    [key] = seeing.keys.list("lou")
    assert key.spent == 0 and not seeing.tasks.list("lou")[0]  # nothing made, nothing recorded
