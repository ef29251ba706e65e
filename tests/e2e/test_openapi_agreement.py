"""The OpenAPI document and the server agree: what the schema allows is taken (or refused only for the state of
things: funds, a conflict, something not found), and what it refuses is refused. One test per disagreement that
schema fuzzing found."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.e2e.server import LocalServer

ADMIN_PATHS = {("/api/v1/admin/grants", "post"), ("/api/v1/admin/models", "get"), ("/api/v1/admin/models", "put"),
               ("/api/v1/admin/models", "delete")}


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


def test_consistency_from_the_empty_tree_and_sizes_never_signed(server: LocalServer) -> None:
    """from=0 (the schema's minimum) is the empty tree, consistent with every checkpoint; a size no checkpoint has
    is not found (404), where it was a bad request."""
    funded(server, "prover0")
    latest = int(server.call("GET", "/api/v1/ledger/checkpoint").body.decode().split("\n")[1])
    empty = server.call("GET", "/api/v1/ledger/consistency?from=0")
    assert empty.status == 200, empty.body
    assert empty.json["to"] >= latest and empty.json["consistent"] is True and empty.json["proof"] == []
    assert empty.json["from_root"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of nothing
    zero = server.call("GET", "/api/v1/ledger/consistency?from=0&to=0")
    assert zero.status == 200 and zero.json["consistent"] is True
    for query in (f"from={latest + 10**6}", f"from=1&to={latest + 10**6}", "from=9223372036854775807"):
        missing = server.call("GET", f"/api/v1/ledger/consistency?{query}")
        assert (missing.status, missing.content_type) == (404, "application/problem+json"), (query, missing.body)
        assert missing.json["type"].endswith("/unknown-checkpoint") and "is stored" in missing.json["detail"]


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
