"""The admin console in Chromium, and the admin routes it reads (usage rollups, user lookup, model health)."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from creditflow.domain import merkle
from tests.e2e.server import LocalServer
from tests.e2e.test_web import browser, context, use_token  # noqa: F401  (fixtures)
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def busy(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A runtime where two users have chatted: there is usage to chart."""
    running = LocalServer(tmp_path_factory.mktemp("admin") / "data", AI_PLATFORM_API_KEY="test-key",
                          AI_PLATFORM_BASE_URL=upstream.url, RATE_LIMIT_PER_MINUTE="100000",
                          WELCOME_PER_IP_LIMIT="1000")
    for uid in ("ann", "bob"):
        token = running.token(uid)
        assert running.call("POST", "/api/v1/credits/welcome-bonus", {}, token=token).status == 200
        for n in range(2):
            reply = running.call("POST", "/api/v1/chat", {"messages": [{"role": "user", "content": f"hello {n}"}]},
                                 token=token, headers={"Idempotency-Key": f"{uid}-chat-{n}"})
            assert reply.status == 200, reply.body
    yield running
    running.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def admin(server: LocalServer) -> str:
    return server.token("root", admin=True)


def test_usage_rollups_count_each_entry_once_and_the_audit_names_a_day_that_disagrees(busy: LocalServer) -> None:
    token = admin(busy)
    usage = busy.call("GET", "/api/v1/admin/analytics?by=model", token=token).json
    settles = [e for uid in ("ann", "bob") for e in busy.call(
        "GET", "/api/v1/credits/history?kind=settle", token=busy.token(uid)).json["entries"]]
    assert usage["settles"] == len(settles) == 4
    assert usage["charged"]["micros"] == sum(e["amount"]["micros"] for e in settles) > 0
    assert usage["days"][-1] == settles[0]["at"][:10] and len(usage["days"]) == 30
    largest = usage["groups"][0]
    assert sum(day["micros"] for day in usage["series"][largest["key"]]) == largest["charged"]["micros"]
    assert busy.call("GET", "/api/v1/credits/audit", token=token).json["ok"] is True

    with sqlite3.connect(busy.data / "ledger.sqlite3") as db:  # the rollups live beside the entries they count
        db.execute("UPDATE usage_rollups SET charged = charged + 7")
    audit = busy.call("GET", "/api/v1/credits/audit", token=token).json
    assert audit["ok"] is False
    assert any(f["check"] == "rollup" and "the ledger says" in f["detail"] for f in audit["findings"])
    assert busy.call("POST", "/api/v1/admin/analytics/rebuild", token=token).status == 200
    assert busy.call("GET", "/api/v1/credits/audit", token=token).json["ok"] is True
    assert busy.call("GET", "/api/v1/admin/analytics?by=model", token=token).json["charged"] == usage["charged"]


def test_admin_routes_are_for_admins_and_refuse_bad_ranges(busy: LocalServer) -> None:
    user = busy.token("ann")
    for path in ("/api/v1/admin/analytics", "/api/v1/admin/users/bob", "/api/v1/admin/users/bob/history",
                 "/api/v1/admin/models/health"):
        refused = busy.call("GET", path, token=user)
        assert refused.status == 403 and refused.json["detail"] == "this needs an admin account", path
    token = admin(busy)
    backwards = busy.call("GET", "/api/v1/admin/analytics?from=2026-05-02&to=2026-05-01", token=token)
    assert backwards.status == 400 and "no later than" in backwards.json["detail"]
    assert busy.call("GET", "/api/v1/admin/analytics?from=2026-02-30", token=token).status == 400
    assert busy.call("GET", "/api/v1/admin/analytics?from=2020-01-01&to=2026-01-01", token=token).status == 400
    unknown = busy.call("GET", "/api/v1/admin/users/nobody-here", token=token)
    assert unknown.status == 404 and unknown.json["type"].endswith("/unknown-account")
    bob = busy.call("GET", "/api/v1/admin/users/bob", token=token).json
    assert bob["balance"]["available"]["micros"] < 1000 * 10**6
    health = busy.call("GET", "/api/v1/admin/models/health", token=token).json["models"]
    assert health and all(h["state"] == "closed" for h in health.values())


def open_console(page: Any, server: LocalServer, path: str = "") -> None:
    use_token(page, server, admin(server), f"admin.html#/{path}")
    page.get_by_text("Signed in as root (admin)").wait_for()


def test_the_usage_charts_render_with_data(context: Any, busy: LocalServer) -> None:  # noqa: F811
    page = context.new_page()
    open_console(page, busy)
    chart = page.get_by_test_id("chart")
    chart.locator("canvas").wait_for()
    assert chart.locator(".u-legend").inner_text().count("chat") >= 1  # a series per category
    assert page.get_by_role("cell", name="chat", exact=True).is_visible()
    total = busy.call("GET", "/api/v1/admin/analytics", token=admin(busy)).json["charged"]["credits"]
    assert page.get_by_test_id("usage-total").inner_text() == f"{total} cr"
    page.get_by_label("Grouped by").select_option("model")
    page.get_by_role("button", name="Last 7 days").click()
    page.get_by_role("caption").filter(has_text="Totals by model").wait_for()
    page.get_by_test_id("chart").locator("canvas").wait_for()  # the chart is drawn again for the new grouping
    assert page.get_by_test_id("chart").locator("canvas").count() == 1
    box = page.get_by_test_id("chart").locator("canvas").bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100


def test_ledger_health_models_and_a_grant_from_the_console(context: Any, busy: LocalServer) -> None:  # noqa: F811
    page = context.new_page()
    open_console(page, busy, "ledger")
    page.get_by_text(re.compile("Its signature verifies in this browser")).wait_for()
    page.get_by_role("button", name="Run an audit").click()
    assert "The audit passed" in page.get_by_test_id("audit").inner_text()
    older = busy.call("GET", "/api/v1/ledger/checkpoint").body.decode().split("\n")[1]
    granted = busy.call("POST", "/api/v1/admin/grants", {"uid": "ann", "amount": "1"}, token=admin(busy),
                        headers={"Idempotency-Key": "grow-the-log"}).json
    proof = busy.call("GET", f"/api/v1/credits/verify/{granted['entry']}", token=admin(busy)).json  # signs a head
    newer = proof["treeSize"]
    assert int(newer) > int(older)
    page.get_by_label("Older tree size").fill(older)
    page.get_by_role("button", name="Check").click()
    page.get_by_text(re.compile(rf"^Consistent \(checked in this browser\): tree {older} → {newer}")).wait_for()
    page.get_by_label("Older tree size").fill("999999")
    page.get_by_role("button", name="Check").click()
    page.get_by_role("alert").filter(has_text="no checkpoint of size 999999 is stored").wait_for()  # the server's

    page.goto(f"{busy.url}/admin.html#/models")
    row = page.get_by_test_id("model-row").first
    model = row.locator("strong").first.inner_text()
    row.get_by_role("button", name=f"Disable {model}").click()
    row.get_by_role("button", name=f"Enable {model}").wait_for()
    listed = {m["id"]: m for m in busy.call("GET", "/api/v1/admin/models", token=admin(busy)).json["models"]}
    assert listed[model]["enabled"] is False
    row.get_by_role("button", name=f"Enable {model}").click()
    row.get_by_role("button", name=f"Disable {model}").wait_for()
    for row in page.get_by_test_id("model-row").all():  # each priced as it charges
        shown = listed[row.locator("strong").first.inner_text()]
        price = row.get_by_test_id("model-price").inner_text()
        if "image" in shown["capabilities"]:
            first = shown["imagePrices"][0]
            assert f"{first['price']['credits']} cr an image at {first['size']}, {first['steps']} steps" in price
            assert row.get_by_role("button", name=re.compile("^Reprice")).count() == 0  # no token price to set
        else:
            assert price.endswith("cr per million tokens (input / output)"), price
    assert any("image" in m["capabilities"] for m in listed.values())
    # Reprice sets the input price and keeps the output price (it sent only the input: refused, 409, every time)
    chat = next(r for r in page.get_by_test_id("model-row").all()
                if r.get_by_role("button", name=re.compile("^Reprice")).count())
    repriced = chat.locator("strong").first.inner_text()
    output = listed[repriced]["outputPerMillion"]["credits"]
    chat.get_by_label(f"New input price of {repriced}").fill("0.7")
    chat.get_by_role("button", name=f"Reprice {repriced}").click()
    chat.get_by_test_id("model-price").filter(has_text=f"0.7 / {output} cr per million").wait_for()
    now = {m["id"]: m for m in busy.call("GET", "/api/v1/admin/models", token=admin(busy)).json["models"]}[repriced]
    assert (now["inputPerMillion"]["credits"], now["outputPerMillion"]["credits"]) == ("0.7", output)

    page.goto(f"{busy.url}/admin.html#/users")
    page.get_by_label("User id").fill("bob")
    page.get_by_role("button", name="Look up").click()
    before = page.get_by_test_id("user-available").inner_text()
    page.get_by_label("Amount (credits)").fill("25")
    page.get_by_role("button", name="Grant").click()
    page.get_by_text("Granted 25 cr.").wait_for()
    page.wait_for_function(f"() => document.querySelector('[data-testid=user-available]').textContent !== '{before}'")
    after = busy.call("GET", "/api/v1/credits/balance", token=busy.token("bob")).json["available"]["credits"]
    assert page.get_by_test_id("user-available").inner_text() == f"{after} cr"

    page.goto(f"{busy.url}/admin.html#/users")
    page.get_by_label("User id").fill("nobody-here")
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("alert").filter(has_text="no account for user 'nobody-here'").wait_for()
    for path, empty in (("dead-letters", "No dead letters"), ("shortfalls", "No shortfalls.")):
        page.goto(f"{busy.url}/admin.html#/{path}")
        page.get_by_text(empty).wait_for()


def test_a_user_token_in_the_console_is_told_it_needs_an_admin(context: Any, busy: LocalServer) -> None:  # noqa: F811
    page = context.new_page()
    use_token(page, busy, busy.token("ann"), "admin.html")
    page.get_by_role("alert").filter(has_text="This console needs an admin account: ann is not one").wait_for()


def test_the_console_checks_consistency_against_the_signed_checkpoints_not_the_roots_it_is_sent(
        context: Any, busy: LocalServer) -> None:  # noqa: F811
    """A server showing a forked log sends roots and a proof that agree with each other: the console must check the
    proof against the checkpoints it can verify the signatures of, and say it is not consistent."""
    older = int(busy.call("GET", "/api/v1/ledger/checkpoint").body.decode().split("\n")[1])
    granted = busy.call("POST", "/api/v1/admin/grants", {"uid": "bob", "amount": "1"}, token=admin(busy),
                        headers={"Idempotency-Key": "fork-the-log"}).json
    newer = busy.call("GET", f"/api/v1/credits/verify/{granted['entry']}", token=admin(busy)).json["treeSize"]
    fork = [merkle.leaf_hash(hashlib.sha256(f"fork {n}".encode()).digest()) for n in range(newer)]

    def forked(route: Any) -> None:
        answer = route.fetch().json()
        assert answer["from"] == older and answer["to"] == newer
        answer.update(fromRoot=b64(merkle.root_of_hashes(fork[:older])), toRoot=b64(merkle.root_of_hashes(fork)),
                      proof=[b64(p) for p in merkle.consistency_proof_from_hashes(fork, older)])
        route.fulfill(json=answer)

    page = context.new_page()
    open_console(page, busy, "ledger")
    page.get_by_text(re.compile("Its signature verifies in this browser")).wait_for()
    page.get_by_label("Older tree size").fill(str(older))
    page.get_by_label("Newer tree size (empty: the latest)").fill(str(newer))
    page.get_by_role("button", name="Check").click()
    page.get_by_text(re.compile(rf"^Consistent \(checked in this browser\): tree {older} → {newer}")).wait_for()
    page.route("**/api/v1/ledger/consistency*", forked)
    page.get_by_role("button", name="Check").click()
    page.get_by_text(re.compile(rf"^NOT consistent \(checked in this browser\): tree {older} → {newer}")).wait_for()
