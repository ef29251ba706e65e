"""The OpenAPI document and the server agree: what the schema allows is taken (or refused only for the state of
things: funds, a conflict, something not found), and what it refuses is refused. One test per disagreement that
schema fuzzing found."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.e2e.server import LocalServer

ADMIN_PATHS = {("/api/v1/admin/grants", "post"), ("/api/v1/admin/models", "get"), ("/api/v1/admin/models", "put"),
               ("/api/v1/admin/models", "delete"), ("/api/v1/admin/shortfalls", "get"),
               ("/api/v1/admin/dead-letters", "get"), ("/api/v1/admin/dead-letters/{letterId}/replay", "post"),
               ("/api/v1/admin/analytics", "get"), ("/api/v1/admin/analytics/rebuild", "post"),
               ("/api/v1/admin/models/health", "get"), ("/api/v1/admin/users/{uid}", "get"),
               ("/api/v1/admin/users/{uid}/history", "get"), ("/api/v1/admin/payments", "get"),
               ("/api/v1/admin/deposits", "get"), ("/api/v1/admin/deposits/{depositId}/credit", "post"),
               ("/api/v1/admin/deposits/{depositId}/refund", "post"), ("/api/v1/admin/deposits/scan", "post"),
               ("/api/v1/admin/revenue", "get")}


@pytest.fixture(scope="module")
def document(server: LocalServer) -> dict[str, Any]:
    return server.call("GET", "/api/v1/openapi.json").json


def body_schema(document: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(document["components"]["schemas"][name])


def funded(server: LocalServer, uid: str, credits: str = "20") -> str:
    reply = server.call("POST", "/api/v1/admin/grants", {"uid": uid, "amount": credits},
                        token=server.token("root", admin=True), headers={"Idempotency-Key": f"agree-{uid}"})
    assert reply.status == 200, reply.body
    return server.token(uid)


def test_history_over_an_empty_window_is_an_empty_page(server: LocalServer) -> None:
    """Entries at or after since and before until: since equal to until (or after it) is a window with nothing in
    it, not a bad request."""
    token = funded(server, "window")
    at = server.call("GET", "/api/v1/credits/history", token=token).json["entries"][0]["at"]
    assert [e["kind"] for e in server.call("GET", f"/api/v1/credits/history?since={at}", token=token).json[
        "entries"]] == ["grant"]
    for since, until in ((at, at), ("2999-01-02T00:00:00Z", "2999-01-01T00:00:00Z"),
                         ("2026-01-01T00:00:00Z", "2025-12-31T22:00:00-02:00")):  # the same moment
        reply = server.call("GET", f"/api/v1/credits/history?since={since}&until={until}".replace("+", "%2B"),
                            token=token)
        assert (reply.status, reply.json) == (200, {"entries": [], "nextCursor": None}), reply.body


def test_consistency_from_the_empty_tree_and_sizes_never_signed(server: LocalServer) -> None:
    """from=0 (the schema's minimum) is the empty tree, consistent with every checkpoint; a size no checkpoint has
    is not found (404), where it was a bad request."""
    funded(server, "prover0")
    latest = int(server.call("GET", "/api/v1/ledger/checkpoint").body.decode().split("\n")[1])
    empty = server.call("GET", "/api/v1/ledger/consistency?from=0")
    assert empty.status == 200, empty.body
    assert empty.json["to"] >= latest and empty.json["consistent"] is True and empty.json["proof"] == []
    assert empty.json["fromRoot"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of nothing
    zero = server.call("GET", "/api/v1/ledger/consistency?from=0&to=0")
    assert zero.status == 200 and zero.json["consistent"] is True
    for query in (f"from={latest + 10**6}", f"from=1&to={latest + 10**6}", "from=9223372036854775807"):
        missing = server.call("GET", f"/api/v1/ledger/consistency?{query}")
        assert (missing.status, missing.content_type) == (404, "application/problem+json"), (query, missing.body)
        assert missing.json["type"].endswith("/unknown-checkpoint") and "is stored" in missing.json["detail"]


def test_whole_numbers_may_be_written_with_a_fraction_or_exponent(server: LocalServer) -> None:
    """JSON Schema's integers include 186.0 and 1e3; a body so written is taken, exactly, up to 2**53."""
    token = funded(server, "floaty")
    hold = server.call("POST", "/api/v1/credits/reserve", raw=b'{"amountMicros": 2500000.0, "ttlSeconds": 6e1}',
                       token=token, headers={"Idempotency-Key": "floaty-1"})
    assert hold.status == 200 and hold.json["amount"]["micros"] == 2_500_000, hold.body
    chat = server.call("POST", "/api/v1/chat", raw=b'{"messages": [{"role": "user", "content": "hi"}], '
                       b'"maxTokens": 186.0}', token=token, headers={"Idempotency-Key": "floaty-2"})
    assert chat.status == 200, chat.body
    for raw in (b'{"amountMicros": 2500000.5}', b'{"amountMicros": true}', b'{"amountMicros": "2500000"}',
                b'{"amountMicros": 1e300}'):
        refused = server.call("POST", "/api/v1/credits/check-insufficient", raw=raw, token=token)
        assert refused.status == 400 and refused.json["errors"][0]["field"] == "amountMicros", (raw, refused.body)


def test_the_schema_says_exactly_one_amount(server: LocalServer, document: dict[str, Any]) -> None:
    token = funded(server, "oneof")
    for name, path in (("CheckInsufficientIn", "/api/v1/credits/check-insufficient"),
                       ("ReserveIn", "/api/v1/credits/reserve")):
        schema = body_schema(document, name)
        for body in ({}, {"amount": None, "amountMicros": None}, {"amount": "1", "amountMicros": 1_000_000}):
            assert not schema.is_valid(body), (name, body)
            reply = server.call("POST", path, body, token=token, headers={"Idempotency-Key": "oneof-1"})
            assert reply.status == 400 and "exactly one of amount" in reply.json["detail"], reply.body
        for body in ({"amount": "1"}, {"amountMicros": 1_000_000}, {"amount": "1", "amountMicros": None}):
            assert schema.is_valid(body), (name, body)
    assert not body_schema(document, "AdminGrantIn").is_valid({"uid": "someone"})


def test_the_schema_says_the_largest_hold(server: LocalServer, document: dict[str, Any]) -> None:
    """MAX_RESERVATION_AMOUNT (10,000 credits here) is in the reserve body's schema, in both forms."""
    schema = body_schema(document, "ReserveIn")
    for body in ({"amount": "10000"}, {"amount": "10000.000000"}, {"amount": "9999.999999"}, {"amount": "0.000001"},
                 {"amountMicros": 10_000_000_000}):
        assert schema.is_valid(body), body
    for body in ({"amount": "10000.000001"}, {"amount": "10001"}, {"amount": "99999"}, {"amount": "0"},
                 {"amountMicros": 10_000_000_001}):
        assert not schema.is_valid(body), body
    token = funded(server, "biggest", "10001")
    for body, status in (({"amount": "10000.000001"}, 400), ({"amount": "10000"}, 200)):
        reply = server.call("POST", "/api/v1/credits/reserve", body, token=token,
                            headers={"Idempotency-Key": f"big-{status}"})
        assert reply.status == status, reply.body


def test_the_twenty_sixth_key_is_a_conflict_with_the_keys_there_are(server: LocalServer) -> None:
    token = server.token("keyring")
    for n in range(25):
        assert server.call("POST", "/api/v1/keys", {"name": f"k{n}"}, token=token).status == 200
    refused = server.call("POST", "/api/v1/keys", {"name": "one more"}, token=token)
    assert (refused.status, refused.content_type) == (409, "application/problem+json"), refused.body
    assert refused.json["type"].endswith("/too-many-keys") and "revoke one first" in refused.json["detail"]
    key = server.call("GET", "/api/v1/keys", token=token).json["keys"][0]["id"]
    assert server.call("DELETE", f"/api/v1/keys/{key}", token=token).status == 200
    assert server.call("POST", "/api/v1/keys", {"name": "one more"}, token=token).status == 200


def test_admin_operations_declare_the_admin_role_and_403(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in ADMIN_PATHS:
                assert operation["security"] == [{"bearer": ["admin"]}], (path, method)
                assert "403" in operation["responses"] and "admin" in operation["responses"]["403"]["description"]
            elif "security" in operation:
                assert operation["security"] == [{"bearer": []}], (path, method)
    assert {(p, m) for p, ops in document["paths"].items() for m in ops if p.startswith("/api/v1/admin")} == ADMIN_PATHS


def test_every_operation_taking_an_idempotency_key_declares_its_conflict(document: dict[str, Any]) -> None:
    """The same key sent with another request is a 409 on every route that takes one (Stripe Checkout's left it
    out of the document)."""
    keyed = [(path, method, operation) for path, operations in document["paths"].items()
             for method, operation in operations.items()
             if any(p.get("name") == "Idempotency-Key" and p.get("required") for p in operation.get("parameters", []))]
    assert ("/api/v1/payments/stripe/checkout", "post") in {(p, m) for p, m, _ in keyed}
    assert [(p, m) for p, m, operation in keyed if "409" not in operation["responses"]] == []


def test_the_schema_says_what_a_user_id_is(server: LocalServer, document: dict[str, Any]) -> None:
    schema = body_schema(document, "AdminGrantIn")
    assert schema.is_valid({"uid": "ada-lovelace@example", "amount": "1"})
    for uid in ("a b", "-dash", "\tv", "ada.lovelace"):  # a '.' no Realtime Database path can hold
        assert not schema.is_valid({"uid": uid, "amount": "1"}), uid
        refused = server.call("POST", "/api/v1/admin/grants", {"uid": uid, "amount": "1"},
                              token=server.token("root", admin=True), headers={"Idempotency-Key": "uid-1"})
        assert refused.status == 400 and "must be a user id" in refused.json["detail"], refused.body
    for path in ("/api/v1/admin/users/{uid}", "/api/v1/admin/users/{uid}/history"):  # said 64 characters at most
        uid = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "uid")
        granted_to = document["components"]["schemas"]["AdminGrantIn"]["properties"]["uid"]
        assert uid["schema"]["maxLength"] == 128 and uid["schema"]["pattern"] == granted_to["pattern"], path


def test_a_chat_takes_as_many_messages_as_the_schema_says_and_no_more(server: LocalServer,
                                                                      document: dict[str, Any]) -> None:
    """Reported by fuzzing elsewhere (more messages than maxItems taken), not reproduced here: kept as a guard on
    the boundary, read from the document."""
    most = document["components"]["schemas"]["ChatIn"]["properties"]["messages"]["maxItems"]
    token = funded(server, "talker")
    said = [{"role": "user", "content": "x"}]
    too_many = server.call("POST", "/api/v1/chat", {"messages": said * (most + 1)}, token=token,
                           headers={"Idempotency-Key": "talk-1"})
    assert too_many.status == 400 and too_many.json["errors"][0]["field"] == "messages", too_many.body
    entries = server.call("GET", "/api/v1/credits/history", token=token).json["entries"]
    assert [e["kind"] for e in entries] == ["grant"]
    assert server.call("POST", "/api/v1/chat", {"messages": said * most}, token=token,
                       headers={"Idempotency-Key": "talk-2"}).status == 200


AMOUNT_NAMES = {"amount", "available", "held", "total", "charged", "estimated", "estimate", "shortfall", "required",
                "granted", "released", "spent", "limit", "needed", "price", "owed", "collected", "missing",
                "threshold", "balance", "reserved", "cost", "credits", "perImage", "averageCharge", "totals", "series"}


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    return schema.get("properties") or {}


def _is_integer(prop: dict[str, Any]) -> bool:
    """An integer property, or a map or list of integers, however nested (totals by name, a series a day by name)."""
    if prop.get("type") == "integer":
        return True
    inner = [*prop.get("anyOf", []), prop.get("additionalProperties"), prop.get("items")]
    return any(_is_integer(kind) for kind in inner if isinstance(kind, dict))


def test_api_v1_names_fields_in_camel_case_and_amounts_as_objects(document: dict[str, Any]) -> None:
    """One convention for /api/v1: camelCase names (`from`, a keyword in Python, too), and every credit amount a
    {credits, micros} object, never a bare integer. Money in a currency is in its minor units, as Stripe writes it,
    and says so; an integer amount of micro-credits a request may send is named `…Micros`."""
    snake, bare = [], []
    for name, schema in document["components"]["schemas"].items():
        for prop, spec in _properties(schema).items():
            if "_" in prop:
                snake.append(f"{name}.{prop}")
            fiat = "minor units" in spec.get("description", "")
            if prop in AMOUNT_NAMES and _is_integer(spec) and not fiat:
                bare.append(f"{name}.{prop}")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            snake += [f"{method.upper()} {path} ?{p['name']}" for p in operation.get("parameters", [])
                      if p["in"] == "query" and "_" in p["name"]]
    assert snake == [] and bare == []


def test_field_titles_are_words_not_squashed_names(document: dict[str, Any]) -> None:
    """A field's title is its name in words (`createdAt`: "Created at"): Pydantic titled camelCase names as one
    word ("Createdat", "Urlsexpireat"), which documentation and client generators show."""
    squashed = [f"{name}.{prop}: {spec['title']!r}" for name, schema in document["components"]["schemas"].items()
                for prop, spec in _properties(schema).items()
                if "title" in spec and any(c.isupper() for c in prop[1:]) and " " not in spec["title"]]
    assert squashed == []
    created = document["components"]["schemas"]["KeyOut"]["properties"]["createdAt"]
    assert created["title"] == "Created at"


def test_a_refusal_for_want_of_credits_says_its_amounts_as_objects(server: LocalServer) -> None:
    token = funded(server, "shorty", "1")
    reply = server.call("POST", "/api/v1/credits/reserve", {"amount": "3"}, token=token,
                        headers={"Idempotency-Key": "short-1"})
    assert reply.status == 402 and reply.headers["Content-Type"] == "application/problem+json"
    assert (reply.json["required"], reply.json["available"], reply.json["shortfall"]) == (
        {"credits": "3", "micros": 3_000_000}, {"credits": "1", "micros": 1_000_000},
        {"credits": "2", "micros": 2_000_000})
    assert reply.json["paymentMethods"][0] == "stripe" and reply.json["packs"]
    assert all(option["amount"].isdigit() for option in reply.json["crypto"])
    assert all("_" not in name for name in reply.json)


def test_an_amount_of_too_many_whole_digits_is_told_so(server: LocalServer) -> None:
    """A key limit or a per-request cap of 13 digits was told it must be "a positive number … (at most 6 decimals, no
    sign)": which it was; what it broke, at most 12 digits before the point, went unsaid."""
    token = server.token("digits")
    for method, path, body in (("POST", "/api/v1/keys", {"name": "k", "limit": "1" * 13}),
                               ("PUT", "/api/v1/me/preferences", {"maxCreditsPerRequest": "9" * 14})):
        refused = server.call(method, path, body, token=token)
        assert refused.status == 400 and "at most 12 digits before the point" in refused.json["detail"], refused.body
    assert server.call("GET", "/api/v1/keys", token=token).json["keys"] == []
    assert server.call("GET", "/api/v1/me/preferences", token=token).json["maxCreditsPerRequest"] is None


def test_a_name_of_spaces_is_refused_by_the_schema_and_the_server(server: LocalServer,
                                                                   document: dict[str, Any]) -> None:
    """A key named "   " was made, and listed as an empty cell no one could tell from another key."""
    token = server.token("blanks")
    for schema_name, path, field in (("KeyIn", "/api/v1/keys", "name"),
                                     ("ConversationIn", "/api/v1/conversations", "title")):
        schema = body_schema(document, schema_name)
        assert schema.is_valid({field: " my laptop "}), schema_name
        for blank in ("   ", "\u00a0", "\u3000 "):
            assert not schema.is_valid({field: blank}), (schema_name, blank)
            refused = server.call("POST", path, {field: blank}, token=token)
            assert refused.status == 400 and "something besides spaces" in refused.json["detail"], refused.body
    assert server.call("GET", "/api/v1/keys", token=token).json["keys"] == []
    assert server.call("GET", "/api/v1/conversations", token=token).json["conversations"] == []
