"""The web app in Debian's Chromium (Playwright), against a local runtime started here with an OpenAI-compatible
test server: sign-in, the live balance, chat, tasks, verification in the browser, keys, and bad input."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_tasks_api import settled
from tests.fake_openai import FakeOpenAI
from tests.fake_stripe import FakeStripe, event, signed

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "tests" / "e2e" / "screenshots"  # git-ignored
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
USER_PAGES = ["", "chat", "tasks", "history", "audit", "keys", "settings", "images", "payments"]
HOOKS = "whsec_web"  # the web server's Stripe webhook secret


def needs_browser() -> Any:
    """The Playwright module, or a skip that says what is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make test installs it when run as "
                    "root: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    if not (DIST / "index.html").is_file() or not AXE.is_file():
        pytest.skip("the web app is not built: run make web (npm ci and the esbuild build in web/)")
    return sync_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = needs_browser()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[FakeStripe]:
    server = FakeStripe()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(upstream: FakeOpenAI, stripe_api: FakeStripe, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[LocalServer]:
    running = LocalServer(tmp_path_factory.mktemp("web") / "data", AI_PLATFORM_API_KEY="test-key",
                          AI_PLATFORM_BASE_URL=upstream.url, RATE_LIMIT_PER_MINUTE="100000",
                          WELCOME_PER_IP_LIMIT="1000", STRIPE_SECRET_KEY="sk_test_web", STRIPE_WEBHOOK_SECRET=HOOKS,
                          STRIPE_API_BASE=stripe_api.url)
    yield running
    running.stop()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    made.set_default_timeout(15000)
    yield made
    made.close()


def sign_in(page: Any, server: LocalServer, uid: str, path: str = "") -> None:
    page.goto(f"{server.url}/#/{path}")
    page.get_by_label("User id").fill(uid)
    page.get_by_role("button", name="Sign in as this user").click()
    page.get_by_text(f"Signed in as {uid}").wait_for()


def use_token(page: Any, server: LocalServer, token: str, path: str = "") -> None:
    page.goto(f"{server.url}/{path}")
    page.get_by_label(re.compile("Or paste a token")).fill(token)
    page.get_by_role("button", name="Use this token").click()


def funded(server: LocalServer, uid: str) -> str:
    token = server.token(uid)
    assert server.call("POST", "/api/v1/credits/welcome-bonus", {}, token=token).status == 200
    return token


def test_the_page_says_this_is_the_local_runtimes_dev_sign_in(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    page.goto(web.url + "/")
    page.get_by_text("local runtime's dev sign-in").wait_for()
    config = web.call("GET", "/api/v1/web/config").json
    assert config["devSignIn"] is True and config["realtime"] == "/realtime" and config["firebase"] is None


def test_a_server_out_of_reach_at_sign_in_is_said_so_and_asked_again(context: Any, web: LocalServer) -> None:
    """The page read what the server offers once: out of reach then, it said "No way to sign in is configured here",
    an operator's matter, and kept saying it until a reload."""
    page = context.new_page()
    page.route("**/api/v1/web/config", lambda route: route.abort("connectionrefused"))
    page.goto(web.url + "/")
    page.get_by_role("alert").filter(has_text="the server cannot be reached").wait_for()
    assert page.get_by_text("No way to sign in is configured").count() == 0
    page.unroute("**/api/v1/web/config")  # back
    page.get_by_role("button", name="try again").click()
    page.get_by_label("User id").fill("rae-back")
    page.get_by_role("button", name="Sign in as this user").click()
    page.get_by_text("Signed in as rae-back").wait_for()
    page.get_by_text("Updates: Live").wait_for()  # the realtime base, read from the same config


def test_sign_in_claim_the_bonus_and_the_balance_changes_live_when_another_page_spends(
        browser: Any, context: Any, web: LocalServer) -> None:
    first = context.new_page()
    sign_in(first, web, "ada")
    first.get_by_text("Updates: Live").wait_for()
    first.get_by_role("button", name="Claim the welcome bonus").click()
    first.get_by_text("Welcome bonus: 1000 cr granted.").wait_for()
    available = first.get_by_test_id("available")
    first.wait_for_function("() => document.querySelector('[data-testid=available]').textContent === '1000 cr'")
    assert first.get_by_role("cell", name="promotional").is_visible()  # the lot

    other = browser.new_context()
    try:
        second = other.new_page()
        sign_in(second, web, "ada", "chat")
        second.get_by_label("Message", exact=True).fill("spend a little")
        second.get_by_role("button", name="Send").click()
        second.get_by_test_id("charge").wait_for()
        # live, not on a reload or a poll (how soon is bench/web.py's figure, not a test's)
        first.wait_for_function("() => document.querySelector('[data-testid=available]').textContent !== '1000 cr'",
                                timeout=3000)
    finally:
        other.close()
    balance = web.call("GET", "/api/v1/credits/balance", token=web.token("ada")).json
    assert available.inner_text() == f"{balance['available']['credits']} cr"  # what the ledger says, unreloaded


def test_the_welcome_bonus_is_offered_only_while_it_can_be_claimed(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    sign_in(page, web, "wes")
    claim = page.get_by_role("button", name="Claim the welcome bonus: 1000 cr")
    claim.click()
    page.get_by_text("Welcome bonus: 1000 cr granted.").wait_for()
    claim.wait_for(state="detached")  # a second click could only be refused
    page.reload()
    page.get_by_test_id("available").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("button", name=re.compile("welcome bonus")).count() == 0
    assert "claim the welcome bonus" not in page.inner_text("main")


def test_the_low_balance_notice_comes_live_and_goes_when_the_balance_is_back(context: Any, web: LocalServer) -> None:
    token = funded(web, "lou")
    page = context.new_page()
    sign_in(page, web, "lou")
    page.get_by_text("Updates: Live").wait_for()
    assert page.get_by_test_id("low-balance").count() == 0
    hold = web.call("POST", "/api/v1/credits/reserve", {"amount": "960", "category": "image"}, token=token,
                    headers={"Idempotency-Key": "lou-big-hold"}).json  # 40 left: below the 50 threshold
    notice = page.get_by_test_id("low-balance")
    notice.wait_for(timeout=3000)
    assert notice.inner_text().startswith("Low balance:") and "below 50" in notice.inner_text()  # said in words
    assert page.get_by_test_id("held").inner_text() == "960 cr"
    web.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold["reservationId"]}, token=token,
             headers={"Idempotency-Key": "lou-release"})
    notice.wait_for(state="detached", timeout=3000)
    assert page.get_by_test_id("available").inner_text() == "1000 cr"


def test_a_chat_reply_streams_then_shows_its_charge(context: Any, web: LocalServer) -> None:
    funded(web, "bea")
    page = context.new_page()
    sign_in(page, web, "bea", "chat")
    held: list[Any] = []  # the conversation's own read, answered only after the reply: a slow network
    page.route("**/api/v1/conversations/*", lambda route: held.append(route))
    page.get_by_role("button", name="New conversation").click()
    page.get_by_role("button", name="Leave the conversation").wait_for()
    assert "auto picks the cheapest" in page.get_by_test_id("price").inner_text()
    model = page.locator("#chat-model option").nth(1).get_attribute("value")
    page.get_by_label("Model").select_option(model)
    assert re.search(r"Price: [\d.]+ cr per million input tokens", page.get_by_test_id("price").inner_text())
    page.get_by_label("Message", exact=True).fill("DRIP please say several words")
    page.get_by_role("button", name="Send").click()
    messages = page.get_by_test_id("messages")
    page.get_by_text("(streaming…)").wait_for()
    partial = messages.inner_text()
    charge = page.get_by_test_id("charge")
    charge.wait_for()
    assert "(streaming…)" in partial and len(messages.inner_text()) > len(partial)  # pieces arrived one by one
    assert re.search(r"Charged \d+(\.\d+)? cr", charge.inner_text())
    assert "memory:" in charge.inner_text()  # in a conversation: what memory did
    reply = messages.inner_text()
    assert held, "the conversation was read"
    for route in held:
        route.continue_()
    page.unroute("**/api/v1/conversations/*")
    page.get_by_role("heading", name=re.compile("^Conversation ")).wait_for()  # its title, once read
    assert messages.inner_text() == reply  # the streamed reply is not wiped by the late read


def test_a_task_progress_reaches_100_percent_with_its_final_charge(context: Any, web: LocalServer) -> None:
    funded(web, "cyd")
    page = context.new_page()
    sign_in(page, web, "cyd", "tasks")
    page.get_by_label("Prompt").fill("a task for the progress bar")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_text(re.compile(r"Submitted task .* \(through the (REST API|realtime bus)\)")).wait_for()
    task = page.get_by_test_id("task").first
    task.get_by_test_id("task-percent").filter(has_text="100 %").wait_for(timeout=30000)
    page.wait_for_function("() => document.querySelector('[data-testid=task]').dataset.state === 'succeeded'")
    assert task.locator("progress").get_attribute("value") == "100"
    charged = task.get_by_test_id("task-charged").inner_text()
    stored = web.call("GET", "/api/v1/tasks?limit=1", token=web.token("cyd")).json["tasks"][0]
    assert charged == f"{stored['charged']['credits']} cr" and stored["charged"]["micros"] > 0


def test_a_task_with_a_limit_typed_in_the_form_goes_through_the_bus(context: Any, web: LocalServer) -> None:
    """The form sends the limit as typed, a decimal string (no float near money): the bus's rules take it, and the
    task holds no more than it. Zero is refused on the page, before anything is written."""
    funded(web, "lim")
    page = context.new_page()
    sign_in(page, web, "lim", "tasks")
    page.get_by_label("Most it may cost (credits, optional)").fill("0")
    page.get_by_label("Prompt").fill("a task with a limit")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_role("alert").filter(has_text="must be more than 0 credits").wait_for()
    assert web.call("GET", "/api/v1/tasks", token=web.token("lim")).json["tasks"] == []
    page.get_by_label("Kind").select_option("agent")  # an agent holds its limit whole
    page.get_by_label("Agent", exact=True).select_option("analysis")  # named, not chosen from the goal
    page.get_by_label("Most it may cost (credits, optional)").fill("0.5")
    page.get_by_label("Goal").fill("say hello")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_text(re.compile(r"Submitted task .* \(through the realtime bus\)")).wait_for()
    task_id = page.get_by_test_id("task").first.get_attribute("aria-label").removeprefix("Task ")
    written = web.call("GET", f"/realtime/requests/lim/{task_id}.json?auth={web.token('lim')}").json
    assert written["maxCredits"] == "0.5" and written["input"] == {"goal": "say hello", "agent": "analysis"}
    page.get_by_test_id("task-agent").filter(has_text="Agent: analysis").wait_for()
    stored = web.call("GET", f"/api/v1/tasks/{task_id}", token=web.token("lim")).json
    assert stored["reserved"]["micros"] == 500_000, stored


def test_a_computer_whose_clock_is_fast_still_submits_tasks(context: Any, web: LocalServer) -> None:
    """The request's createdAt was this computer's Date.now(), and the rules refuse one later than the database's
    `now`: with a clock 5 s fast every task was refused ("Error 401: the realtime database refused the write")."""
    funded(web, "fast")
    page = context.new_page()
    sign_in(page, web, "fast", "tasks")
    page.clock.set_system_time(datetime.now(UTC) + timedelta(seconds=5))
    page.get_by_role("textbox", name="Prompt").fill("a task from a clock 5 s fast")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_text(re.compile(r"Submitted task .* \(through the realtime bus\)")).wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=task]')?.dataset.state === 'succeeded'",
                           timeout=30000)
    task_id = page.get_by_test_id("task").first.get_attribute("aria-label").removeprefix("Task ")
    written = web.call("GET", f"/realtime/requests/fast/{task_id}.json?auth={web.token('fast')}").json
    assert written["createdAt"] <= time.time() * 1000  # the database's time, not the page's


def test_a_prompt_larger_than_a_task_takes_is_said_so_on_the_page(context: Any, web: LocalServer) -> None:
    """A prompt over 100 KB was written to the bus and refused by its rules (at most 100,000 characters) as "Error
    401: the realtime database refused the write (Permission denied)", naming neither the prompt nor its limit."""
    funded(web, "long")
    page = context.new_page()
    written: list[str] = []
    page.on("request", lambda r: written.append(r.url) if "/realtime/requests/" in r.url else None)
    sign_in(page, web, "long", "tasks")
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.fill("z" * 100_001)
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_role("alert").filter(has_text="the prompt is 100.0 KB: a task takes at most 100 KB").wait_for()
    assert not written and len(prompt.input_value()) == 100_001  # nothing sent, nothing lost
    prompt.fill("é" * 50_000)  # 100 KB in UTF-8, as the server counts it: 50,000 characters
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_role("alert").filter(has_text="the prompt is 100.0 KB").wait_for()
    assert not written and web.call("GET", "/api/v1/tasks", token=web.token("long")).json["tasks"] == []


def test_a_prompt_of_spaces_is_refused_on_the_page_not_made_a_failed_task(context: Any, web: LocalServer) -> None:
    """The bus cannot answer 422: a blank prompt written there became a failed task under a green "Submitted"."""
    funded(web, "blank")
    page = context.new_page()
    written: list[str] = []
    page.on("request", lambda r: written.append(r.url) if "/realtime/requests/" in r.url else None)
    sign_in(page, web, "blank", "tasks")
    page.get_by_role("textbox", name="Prompt").fill("   ")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_role("alert").filter(has_text="write a prompt first: this one is only spaces").wait_for()
    page.get_by_label("Kind").select_option("agent")
    page.get_by_role("textbox", name="Goal").fill("\n\t ")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_role("alert").filter(has_text="write a goal first").wait_for()
    assert not written and web.call("GET", "/api/v1/tasks", token=web.token("blank")).json["tasks"] == []
    assert page.get_by_text("Submitted task").count() == 0


def test_a_limit_of_more_digits_than_the_bus_takes_is_stopped_by_the_form(context: Any, web: LocalServer) -> None:
    """The bus's rules take at most 12 whole digits; the form let more through, and the rules' refusal came back as
    "Error 401: the realtime database refused the write (Permission denied)", naming no field."""
    funded(web, "huge")
    page = context.new_page()
    written: list[str] = []
    page.on("request", lambda r: written.append(r.url) if "/realtime/requests/" in r.url else None)
    sign_in(page, web, "huge", "tasks")
    limit = page.get_by_label("Most it may cost (credits, optional)")
    limit.fill("1" * 13)
    page.get_by_role("textbox", name="Prompt").fill("a task with an absurd limit")
    page.get_by_role("button", name="Submit the task").click()
    page.wait_for_timeout(500)
    assert limit.evaluate("input => input.validity.patternMismatch")  # the browser says what it needs, at the field
    assert "12 digits" in limit.get_attribute("title")
    assert not written and page.get_by_role("alert").count() == 0
    limit.fill("1" * 12 + ".5")  # as much as the rules take still goes
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_text(re.compile(r"Submitted task .* \(through the realtime bus\)")).wait_for()


def test_an_agent_that_asks_before_passing_its_limit_waits_for_the_answer_given_on_the_page(
        context: Any, web: LocalServer) -> None:
    """The form's "ask me" makes an agent that pauses at its limit (input.approval): the page shows its question,
    the answer given there raises the limit, and the agent goes on from where it paused to its end."""
    page, task, task_id = _agent_that_asks(context, web, "ask")
    questions = []
    for _ in range(6):  # each approval doubles the limit; the agent asks again while its next step needs more
        page.wait_for_function("() => ['waiting', 'succeeded'].includes("
                               "document.querySelector('[data-testid=task]').dataset.state)", timeout=30000)
        if task.get_attribute("data-state") == "succeeded":
            break
        asked = web.call("GET", f"/api/v1/tasks/{task_id}", token=web.token("ask")).json
        assert asked["question"] not in questions and asked["question"] in task.inner_text()
        questions.append(asked["question"])
        task.get_by_role("button", name="Approve", exact=True).click()
        task.get_by_text(asked["question"]).wait_for(state="detached", timeout=30000)  # taken: it runs on
    assert task.get_attribute("data-state") == "succeeded" and questions
    done = web.call("GET", f"/api/v1/tasks/{task_id}", token=web.token("ask")).json
    assert done["result"]["partial"] is False and done["result"]["toolCalls"] == 2, done["result"]
    assert done["reserved"]["micros"] > 300 and 0 < done["charged"]["micros"] <= done["reserved"]["micros"]
    assert task.get_by_test_id("task-charged").inner_text() == f"{done['charged']['credits']} cr"


def test_an_agent_asked_on_the_page_stops_with_what_it_has_when_declined(context: Any, web: LocalServer) -> None:
    """The question is answered by a button, Approve or Decline: a typed "Yes, go ahead." once read as a no."""
    page, task, task_id = _agent_that_asks(context, web, "decline")
    page.wait_for_function("() => document.querySelector('[data-testid=task]').dataset.state === 'waiting'",
                           timeout=30000)
    task.get_by_role("button", name="Decline").click()
    page.wait_for_function("() => document.querySelector('[data-testid=task]').dataset.state === 'succeeded'",
                           timeout=30000)
    done = web.call("GET", f"/api/v1/tasks/{task_id}", token=web.token("decline")).json
    assert done["result"]["partial"] is True and "not approved" in str(done["result"]), done["result"]
    assert done["charged"]["micros"] <= 300


def _agent_that_asks(context: Any, web: LocalServer, uid: str) -> tuple[Any, Any, str]:
    """A page with an agent task started that pauses at its limit to ask: the page, its card, its id."""
    funded(web, uid)
    page = context.new_page()
    sign_in(page, web, uid, "tasks")
    page.get_by_label("Kind").select_option("agent")
    page.get_by_label("Model", exact=True).select_option("meta-llama/Llama-3.3-70B-Instruct")
    page.get_by_label("Most it may cost (credits, optional)").fill("0.0003")  # room for one model call of three
    page.get_by_label("Ask me before it spends past its limit (else it stops there with what it has)").check()
    plan = [["arithmetic", {"expression": "6 * 7"}], ["arithmetic", {"expression": "2 ** 10"}]]
    page.get_by_label("Goal").fill("work it out TOOLPLAN:" + json.dumps(plan))
    page.get_by_role("button", name="Submit the task").click()
    task = page.get_by_test_id("task").first
    return page, task, task.get_attribute("aria-label").removeprefix("Task ")


def test_a_task_streams_its_tokens_live_and_can_be_cancelled(context: Any, web: LocalServer) -> None:
    funded(web, "cam")
    page = context.new_page()
    sign_in(page, web, "cam", "tasks")
    page.get_by_label("Prompt").fill("DRIP " + "slowly " * 40)  # echoed a word every 0.3 s: 12 s
    page.get_by_role("button", name="Submit the task").click()
    task = page.get_by_test_id("task").first
    output = task.get_by_test_id("task-output")
    output.wait_for(timeout=20000)  # tokens from /streams/{uid}/{task}, while it runs
    assert task.get_attribute("data-state") == "running" and output.inner_text()
    task.get_by_role("button", name="Cancel this task").click()
    page.wait_for_function("() => document.querySelector('[data-testid=task]').dataset.state === 'cancelled'",
                           timeout=20000)
    stored = web.call("GET", "/api/v1/tasks?limit=1", token=web.token("cam")).json["tasks"][0]
    assert stored["state"] == "cancelled"
    assert task.get_by_test_id("task-charged").inner_text() == f"{stored['charged']['credits']} cr"
    assert task.get_by_role("button", name="Cancel this task").count() == 0  # nothing to cancel at its end


def test_a_task_made_through_the_rest_api_is_cancelled_and_answered_on_the_page(context: Any, web: LocalServer
                                                                                 ) -> None:
    """A task an API client (or the images page, or an agent) made has no request on the bus: writing its cancel or
    answer there was refused by the rules, and the page said "Error 401: the realtime database refused the write"."""
    token = funded(web, "rex")
    made = web.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "DRIP " + "slowly " * 40}, token=token,
                    headers={"Idempotency-Key": "rex-drip"})
    assert made.status == 200, made.body
    page = context.new_page()
    sign_in(page, web, "rex", "tasks")
    task = page.get_by_role("article", name="Task rex-drip")
    task.get_by_role("button", name="Cancel this task").click()
    page.wait_for_function("() => document.querySelector('[aria-label=\"Task rex-drip\"]').dataset.state === "
                           "'cancelled'", timeout=20000)
    assert task.get_by_role("alert").count() == 0
    plan = [["arithmetic", {"expression": "6 * 7"}], ["arithmetic", {"expression": "2 ** 10"}]]
    asking = {"kind": "agent", "model": "meta-llama/Llama-3.3-70B-Instruct", "maxCredits": "0.0003",
              "input": {"goal": "work it out TOOLPLAN:" + json.dumps(plan), "approval": True}}
    assert web.call("POST", "/api/v1/tasks", asking, token=token, headers={"Idempotency-Key": "rex-ask"}).status == 200
    agent = page.get_by_role("article", name="Task rex-ask")
    agent.get_by_role("button", name="Decline").click(timeout=30000)  # once it waits for the answer
    page.wait_for_function("() => document.querySelector('[aria-label=\"Task rex-ask\"]').dataset.state === "
                           "'succeeded'", timeout=30000)
    done = web.call("GET", "/api/v1/tasks/rex-ask", token=token).json
    assert done["result"]["partial"] is True and "not approved" in str(done["result"]), done["result"]


def test_a_request_no_function_answered_is_sent_again_through_the_rest_api(context: Any, web: LocalServer) -> None:
    """Firebase never delivers a Realtime Database trigger again, and an instance can die before it records the task:
    a request the bus took but no task was made for is sent again through the REST API under the same id, after
    20 s, and runs once. (Here the bus takes the write and drops it, as a lost trigger leaves it unanswered.)"""
    funded(web, "lost")
    page = context.new_page()
    page.clock.install()
    dropped: list[str] = []

    def lost(route: Any) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        dropped.append(route.request.url.split("?")[0].removesuffix(".json").rsplit("/", 1)[1])
        route.fulfill(status=200, json=json.loads(route.request.post_data))

    page.route("**/realtime/requests/**", lost)
    sign_in(page, web, "lost", "tasks")
    page.get_by_label("Prompt").fill("a request whose trigger is lost")
    page.get_by_role("button", name="Submit the task").click()
    page.get_by_text(re.compile(r"Submitted task .* \(through the realtime bus\)")).wait_for()
    token = web.token("lost")
    page.clock.fast_forward(15000)
    assert len(dropped) == 1 and web.call("GET", "/api/v1/tasks", token=token).json["tasks"] == []  # still waits
    page.clock.fast_forward(6000)  # past 20 s unanswered
    page.wait_for_function("() => document.querySelector('[data-testid=task]')?.dataset.state === 'succeeded'",
                           timeout=30000)
    tasks = web.call("GET", "/api/v1/tasks", token=token).json["tasks"]
    assert [t["id"] for t in tasks] == dropped and tasks[0]["state"] == "succeeded"
    assert tasks[0]["charged"]["micros"] > 0
    page.clock.fast_forward(30000)  # and once only
    assert len(web.call("GET", "/api/v1/tasks", token=token).json["tasks"]) == 1


def test_a_request_answered_is_not_sent_again(context: Any, web: LocalServer) -> None:
    funded(web, "kept")
    page = context.new_page()
    page.clock.install()
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/api/v1/tasks" in r.url else None)
    sign_in(page, web, "kept", "tasks")
    page.get_by_label("Prompt").fill("a request answered on the bus")
    page.get_by_role("button", name="Submit the task").click()
    page.wait_for_function("() => document.querySelector('[data-testid=task]')?.dataset.state === 'succeeded'",
                           timeout=30000)
    with page.expect_response(lambda r: "/api/v1/tasks/" in r.url and r.request.method == "GET") as looked:
        page.clock.fast_forward(21000)
    assert looked.value.status == 200 and posted == []  # it looked, found its task, and sent nothing


def test_the_tasks_page_follows_the_newest_tasks_not_the_whole_history(context: Any, web: LocalServer) -> None:
    """A long history is not read whole: the page asks the tree for the newest 25 tasks (a query) and for the
    streams of running ones only; a finished task's reply is read from its result."""
    token = funded(web, "tia")
    for n in range(27):
        assert web.call("POST", "/api/v1/tasks", {"kind": "chat", "input": f"number {n}"}, token=token,
                        headers={"Idempotency-Key": f"tia-{n}"}).status == 200
    deadline = time.monotonic() + 60
    while not all(t["state"] == "succeeded" for t in
                  web.call("GET", "/api/v1/tasks?limit=50", token=token).json["tasks"]):
        assert time.monotonic() < deadline, "the tasks did not all finish"
        time.sleep(0.2)
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    sign_in(page, web, "tia", "tasks")
    page.get_by_text("Your newest 25 tasks are followed live").wait_for()
    cards = page.get_by_test_id("task")
    assert cards.count() == 25
    replies = [card.get_by_test_id("task-output").inner_text() for card in cards.all()]
    assert replies[0] == "echo: number 26" and replies[-1] == "echo: number 2"  # newest first, from the results
    realtime = [url.split("?")[0] for url in asked if "/realtime/" in url]
    assert f"{web.url}/realtime/tasks/tia.json" in realtime
    assert not any("/realtime/streams/" in url for url in realtime)  # nothing runs: no stream is read
    assert all("limitToLast=25" in url for url in asked if "/realtime/tasks/tia.json" in url)
    page.get_by_role("button", name="Older tasks").click()  # the rest, a page at a time from the REST API
    page.get_by_text("No older tasks.").wait_for()
    assert cards.count() == 27 and cards.last.get_by_test_id("task-output").inner_text() == "echo: number 0"
    assert page.get_by_text("2 older below").is_visible()
    listed = [url for url in asked if "/api/v1/tasks?" in url]
    assert len(listed) == 1 and "cursor=" in listed[0], listed  # past the followed ones: not the newest page again

def test_verify_succeeds_in_the_browser_and_fails_on_an_altered_signature(context: Any, web: LocalServer) -> None:
    funded(web, "dee")
    page = context.new_page()
    sign_in(page, web, "dee", "history")
    row = page.get_by_test_id("entry").first
    entry_id = row.get_attribute("data-entry")
    row.get_by_role("button", name=f"Verify entry {entry_id}").click()
    result = row.get_by_test_id("verification")
    result.wait_for()
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    assert "Verified in your browser" in result.inner_text()
    checks = {li.get_attribute("data-check"): li.get_attribute("data-ok") for li in result.locator("li").all()}
    assert checks == {name: "true" for name in ("hash", "canonical", "signature", "chain", "checkpoint", "inclusion",
                                                "latest", "kept")}

    with sqlite3.connect(web.data / "ledger.sqlite3") as db:  # flip the signature's first byte, as an attacker
        (signature,) = db.execute("SELECT signature FROM entries WHERE id = ?", (entry_id,)).fetchone()
        raw = bytearray(base64.b64decode(signature))
        raw[0] ^= 0xFF
        db.execute("UPDATE entries SET signature = ? WHERE id = ?", (base64.b64encode(raw).decode(), entry_id))
    page.reload()
    row = page.locator(f"[data-entry='{entry_id}']")
    row.get_by_role("button", name=f"Verify entry {entry_id}").click()
    result = row.get_by_test_id("verification")
    result.wait_for()
    assert result.get_attribute("data-ok") == "false"
    text = result.inner_text()
    assert "Verification FAILED" in text
    assert result.locator("[data-check=signature]").get_attribute("data-ok") == "false"
    assert "the signature does not verify with the published key" in text
    assert result.locator("[data-check=hash]").get_attribute("data-ok") == "true"  # it says which check failed


def test_the_browser_keeps_a_checkpoint_and_catches_a_rolled_back_or_rewritten_log(context: Any,
                                                                                    web: LocalServer) -> None:
    """Whoever holds the signing key can roll the store back or rewrite it and sign it all again: every check the
    server can make passes. The checkpoint the browser kept from its last verification does not."""
    from creditflow.bootstrap import load_keys
    from creditflow.config import Settings
    from creditflow.domain.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint

    funded(web, "wit")
    page = context.new_page()
    sign_in(page, web, "wit", "history")

    def verified() -> tuple[str, str]:
        page.reload()
        row = page.get_by_test_id("entry").first
        row.get_by_role("button", name=f"Verify entry {row.get_attribute('data-entry')}").click()
        result = row.get_by_test_id("verification")
        result.wait_for()
        kept = result.locator("[data-check=kept]")
        return kept.get_attribute("data-ok"), kept.inner_text()

    assert verified()[0] == "true"
    note = page.evaluate("localStorage.getItem('creditflow.checkpoint')")
    key, keyring = load_keys(Settings.from_env(runtime="local", data_dir=web.data))
    head = open_checkpoint(note, keyring).checkpoint
    assert verified()[0] == "true"  # kept, and the log still holds it
    for forged, said in ((Checkpoint(head.origin, head.size + 1000, bytes(32)), "rolled back"),
                         (Checkpoint(head.origin, head.size, bytes(32)), "rewritten")):
        page.evaluate("note => localStorage.setItem('creditflow.checkpoint', note)", sign_checkpoint(forged, key))
        ok, text = verified()
        assert ok == "false" and said in text, text
        assert page.evaluate("localStorage.getItem('creditflow.checkpoint')") == sign_checkpoint(forged, key)


def audited(page: Any) -> Any:
    """The user's own audit run from its page with the keyboard: what it shows."""
    button = page.get_by_role("button", name="Audit my account")
    button.focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Auditing…").wait_for(state="detached")
    report = page.get_by_test_id("own-audit")
    report.wait_for()
    return report


def test_a_user_audits_their_own_entries_against_the_latest_checkpoint(context: Any, web: LocalServer) -> None:
    """The whole-ledger audit had a page in the console; a user's own, which proves their entries included in the
    signed checkpoint, had none. It says what the audit said: passed, how many entries, which checkpoint."""
    token = funded(web, "aud")
    hold = web.call("POST", "/api/v1/credits/reserve", {"amount": "2"}, token=token,
                    headers={"Idempotency-Key": "aud-hold"}).json
    newest = hold["entry"]
    assert web.call("GET", f"/api/v1/credits/verify/{newest}", token=token).json["ok"]  # a checkpoint covers them
    expected = web.call("GET", "/api/v1/credits/audit", token=token).json
    assert expected["ok"] and expected["entries"] == expected["proved"] == 2 and expected["checkpointSize"] >= 2
    page = context.new_page()
    sign_in(page, web, "aud")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    page.get_by_role("heading", name="Audit your account").wait_for()
    report = audited(page)
    assert report.get_attribute("role") == "status" and report.get_attribute("data-ok") == "true"
    text = report.inner_text()
    assert text.startswith("Your audit passed.")
    assert report.get_by_test_id("own-audit-entries").inner_text() == "2"
    assert "your balance (1000 cr, 2 cr of it held)" in text
    assert report.get_by_test_id("own-audit-checkpoint").inner_text() == str(expected["checkpointSize"])
    assert report.get_by_test_id("own-audit-proved").inner_text() == "2" and "after it" not in text
    assert report.get_by_test_id("own-audit-findings").count() == 0
    # pressed from the keyboard, disabled while it ran: the focus is back on it, not on the page
    page.wait_for_function("() => document.activeElement.textContent === 'Audit my account'", timeout=5000)


def test_a_users_audit_names_an_entry_whose_leaf_in_the_log_was_rewritten(context: Any,
                                                                           tmp_path: Path) -> None:
    """An attacker with the database rewrites the leaf of one of the user's entries: the page says the audit failed
    and names the entry and the leaf. A runtime of its own: the rewritten log is left to no other test."""
    server = LocalServer(tmp_path / "data", RATE_LIMIT_PER_MINUTE="100000")
    try:
        token = funded(server, "eve")
        [entry] = [e["id"] for e in server.call("GET", "/api/v1/credits/history", token=token).json["entries"]]
        assert server.call("GET", f"/api/v1/credits/verify/{entry}", token=token).json["ok"]
        page = context.new_page()
        sign_in(page, server, "eve", "audit")
        assert audited(page).get_attribute("data-ok") == "true"
        with sqlite3.connect(server.data / "ledger.sqlite3") as db:
            (index,) = db.execute("SELECT idx FROM leaves WHERE entry_id = ?", (entry,)).fetchone()
            db.execute("UPDATE leaves SET data = ? WHERE entry_id = ?", (b"rewritten".ljust(32, b"\0"), entry))
        report = audited(page)
        page.locator("[data-testid=own-audit][data-ok=false]").wait_for()
        assert report.inner_text().startswith("Your audit FAILED: 1 error.")
        assert report.get_by_test_id("own-audit-entries").inner_text() == "1"
        findings = report.get_by_test_id("own-audit-findings").locator("li")
        assert findings.count() == 1
        assert findings.first.get_attribute("data-check") == "merkle"
        assert findings.first.get_attribute("data-severity") == "error"
        assert f"leaf {index} records a different hash for entry {entry} than the entry has now" in \
            findings.first.inner_text()
    finally:
        server.stop()


def test_history_pages_and_filters_by_kind(context: Any, web: LocalServer) -> None:
    token = funded(web, "max")
    for n in range(12):  # 12 holds and 12 releases: with the grant, 25 entries
        hold = web.call("POST", "/api/v1/credits/reserve", {"amount": "1", "category": "image"}, token=token,
                        headers={"Idempotency-Key": f"max-hold-{n}"}).json
        web.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold["reservationId"]},
                 token=token, headers={"Idempotency-Key": f"max-release-{n}"})
    page = context.new_page()
    sign_in(page, web, "max", "history")
    rows = page.get_by_test_id("entry")
    rows.first.wait_for()
    assert rows.count() == 20 and rows.first.locator("td").first.inner_text() == "25"  # newest first
    available, held = rows.get_by_test_id("available-after"), rows.get_by_test_id("held-after")
    assert [(available.nth(n).inner_text(), held.nth(n).inner_text()) for n in (0, 1)] == [
        ("1000 cr", "0 cr"), ("999 cr", "1 cr")]  # what each entry left: the newest hold moved 1 cr aside
    page.get_by_role("button", name="Older entries").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=entry]').length === 5")
    assert rows.last.locator("td").first.inner_text() == "1"
    assert page.get_by_role("button", name="Older entries").is_disabled()
    page.get_by_role("button", name="Newer entries").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=entry]').length === 20")
    page.get_by_label("grant").check()
    page.get_by_role("button", name="Apply the filters").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=entry]').length === 1")
    assert "grant" in rows.first.inner_text()
    page.get_by_label("From").fill("2001-01-01T00:00")
    page.get_by_label("Until").fill("2001-01-02T00:00")
    page.get_by_role("button", name="Apply the filters").click()
    page.get_by_text("No entries match these filters.").wait_for()


def test_an_entry_links_to_the_task_it_was_written_for(context: Any, web: LocalServer) -> None:
    token = funded(web, "tal")
    body = {"kind": "chat", "input": "which task?", "model": "meta-llama/Llama-3.3-70B-Instruct"}
    assert web.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "tal-1"}).status == 200
    assert settled(web, token, "tal-1")["state"] == "succeeded"
    page = context.new_page()
    sign_in(page, web, "tal", "history")
    links = page.get_by_test_id("entry-task")
    links.first.wait_for()
    assert [link.inner_text() for link in links.all()] == ["task tal-1", "task tal-1"]  # its settle and its hold
    assert page.get_by_test_id("entry").count() == 3  # and the grant, of no task
    task = web.call("GET", "/api/v1/tasks/tal-1", token=token).json
    back = task["reserved"]["micros"] - task["charged"]["micros"]
    back_credits = f"{back // 1_000_000}.{back % 1_000_000:06d}".rstrip("0").rstrip(".")
    # each amount says where it went: the settle charged the reply and gave the rest of the hold back
    assert [e.inner_text() for e in page.get_by_test_id("entry-effect").all()] == [
        f"charged from held; {back_credits} cr back to available", "available → held", "added to available"]
    links.first.click()
    page.get_by_role("article", name="Task tal-1").wait_for()
    assert page.url.endswith("#/tasks/tal-1")


def test_history_says_why_a_hold_was_released(context: Any, web: LocalServer) -> None:
    """An agent starts an image task held out of its own hold (the test's model plans the tool call): the history
    shows that release as a split, and a plain one without a reason."""
    token = funded(web, "ole")
    hold = web.call("POST", "/api/v1/credits/reserve", {"amount": "1", "category": "image"}, token=token,
                    headers={"Idempotency-Key": "ole-hold"}).json
    web.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold["reservationId"]}, token=token,
             headers={"Idempotency-Key": "ole-release"})
    llama = "meta-llama/Llama-3.3-70B-Instruct"
    goal = "draw TOOLPLAN:" + json.dumps([["start_image_task", {"prompt": "a lighthouse"}]])
    body = {"kind": "agent", "input": goal, "model": llama, "maxCredits": "0.01"}
    assert web.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "ole-agent"}).status == 200
    assert settled(web, token, "ole-agent")["state"] in ("succeeded", "failed"), "the agent task did not end"
    page = context.new_page()
    sign_in(page, web, "ole", "history")
    rows = page.get_by_test_id("entry")
    rows.first.wait_for()
    kinds = [row.get_by_test_id("entry-kind").inner_text() for row in rows.all()]
    assert "release (split)" in kinds and "release" in kinds, kinds

def test_preferences_are_saved_and_read_back(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    sign_in(page, web, "nia", "settings")
    model = page.locator("#pref-model option").nth(1).get_attribute("value")
    page.get_by_label("Model", exact=True).select_option(model)
    page.get_by_label("Cost-saving routing (prefer cheaper models)").check()
    page.get_by_label("Most one request may cost (credits; empty: no cap)").fill("2.5")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    stored = web.call("GET", "/api/v1/me/preferences", token=web.token("nia")).json
    assert stored["preferredModel"] == model and stored["costSaving"] is True
    assert stored["maxCreditsPerRequest"]["credits"] == "2.5"
    page.reload()
    cap = page.get_by_label("Most one request may cost (credits; empty: no cap)")
    cap.wait_for()  # shown at once, and filled once the preferences have loaded: wait for that
    page.wait_for_function("(input) => input.value === '2.5'", arg=cap.element_handle())
    assert cap.input_value() == "2.5"


def test_auto_says_it_asks_the_preferred_model_which_then_answers(context: Any, web: LocalServer) -> None:
    """With a preferred model saved, "auto" said it picks the cheapest healthy model, and the reply came from the
    preferred one: the server tries it first unless cost-saving routing is on."""
    token = funded(web, "pru")
    preferred = "Qwen/Qwen2.5-VL-72B-Instruct"
    assert web.call("PUT", "/api/v1/me/preferences", {"preferredModel": preferred, "costSaving": False},
                    token=token).status == 200
    page = context.new_page()
    sign_in(page, web, "pru", "chat")
    auto = page.locator("#chat-model option").first
    page.wait_for_function("() => document.querySelector('#chat-model option')?.textContent.includes('preferred')")
    assert auto.inner_text() == "auto: your preferred model, Qwen 2.5 VL 72B"
    assert "auto asks your preferred model (see Preferences), Qwen 2.5 VL 72B" in page.get_by_test_id(
        "price").inner_text()
    page.get_by_label("Message", exact=True).fill("who answers?")
    page.get_by_role("button", name="Send").click()
    assert f"by {preferred}" in page.get_by_test_id("charge").inner_text()
    page.goto(f"{web.url}/#/tasks")  # the tasks form says the same
    page.wait_for_function("() => document.querySelector('#task-model option')?.textContent.includes('preferred')")
    assert web.call("PUT", "/api/v1/me/preferences", {"preferredModel": preferred, "costSaving": True},
                    token=token).status == 200
    page.reload()  # cost-saving routing: the cheapest, whatever is preferred
    page.get_by_test_id("price").filter(has_text="auto picks the cheapest").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.locator("#task-model option").first.inner_text() == "auto: the cheapest healthy model"


def test_a_message_over_the_per_request_cap_links_to_where_the_cap_is_set(context: Any, web: LocalServer) -> None:
    """The refusal said "above your limit of 0.000001 per request" and not where that limit is: set once in
    Preferences, perhaps long ago."""
    token = funded(web, "cap")
    assert web.call("PUT", "/api/v1/me/preferences", {"maxCreditsPerRequest": "0.000001"}, token=token).status == 200
    page = context.new_page()
    sign_in(page, web, "cap", "chat")
    page.get_by_label("Message", exact=True).fill("a message over my cap")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert").filter(has_text="above your limit of 0.000001 per request")
    alert.get_by_role("link", name="Change the limit in Preferences").click()
    page.wait_for_url(re.compile("#/settings$"))
    page.wait_for_function("() => document.getElementById('pref-cap')?.value === '0.000001'")  # the cap to change


def test_keys_are_shown_once_listed_and_revoked(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    sign_in(page, web, "eli", "keys")
    page.get_by_text("No keys yet.").wait_for()
    page.get_by_label("Name").fill("my app")
    page.get_by_label("Credit limit (optional)").fill("5")
    page.get_by_role("button", name="Create a key").click()
    secret = page.get_by_test_id("new-key").inner_text()
    assert secret.startswith("cf_")
    row = page.get_by_test_id("key-row").first
    assert "my app" in row.inner_text() and "5 cr" in row.inner_text() and secret not in page.inner_text("table")
    page.get_by_role("button", name="Revoke key my app").click()
    page.get_by_text(re.compile("^revoked ")).wait_for()
    assert web.call("GET", "/v1/models", headers={"Authorization": f"Bearer {secret}"}).status == 401


def test_a_pack_is_bought_on_stripe_checkout_and_its_credits_arrive_when_stripe_confirms(
        context: Any, web: LocalServer, stripe_api: FakeStripe) -> None:
    page = context.new_page()
    page.route("https://checkout.stripe.test/**", lambda route: route.fulfill(
        content_type="text/html", body="<title>Stripe Checkout</title><h1>Stripe Checkout (test)</h1>"))
    sign_in(page, web, "pia", "payments")
    page.get_by_text("No payments yet.").wait_for()
    assert page.get_by_test_id("pack").count() == 3
    page.get_by_role("button", name=re.compile("^Pay by card: 100 credits for ")).click()
    page.get_by_role("heading", name="Stripe Checkout (test)").wait_for()
    [session] = [s for s in stripe_api.sessions.values() if s["client_reference_id"] == "pia"]
    assert page.url == session["url"]
    body, header = signed(event("checkout.session.completed", stripe_api.paid(session["id"])), HOOKS)
    assert web.call("POST", "/webhooks/stripe", raw=body, headers={"Stripe-Signature": header}).status == 200
    page.goto(f"{web.url}/#payments?paid=1")  # Stripe's success_url
    page.get_by_text(re.compile("^Thank you")).wait_for()
    row = page.get_by_test_id("payment-row")
    row.wait_for()
    assert "100 cr" in row.inner_text() and "paid" in row.inner_text()
    page.goto(f"{web.url}/#payments?cancelled=1")
    page.get_by_text("Checkout was cancelled: nothing was charged.").wait_for()
    page.goto(f"{web.url}/#/")  # the balance page lists the notification, with the credits it brought
    page.get_by_text(re.compile(r"^Payment received: 100 cr credited \(")).wait_for()


def test_a_payment_stripe_confirms_after_the_buyer_is_back_shows_without_a_reload(
        context: Any, web: LocalServer, stripe_api: FakeStripe) -> None:
    """Stripe sends the buyer to the success page, often before its webhook: the page said "Thank you … the balance
    updates by itself" above "No payments yet.", which stayed until a reload."""
    token = web.token("ned")
    made = web.call("POST", "/api/v1/payments/stripe/checkout", {"pack": "credits-100"}, token=token,
                    headers={"Idempotency-Key": "ned-checkout"})
    assert made.status == 200, made.body
    page = context.new_page()
    sign_in(page, web, "ned", "payments?paid=1")  # back from Checkout; Stripe has not confirmed yet
    page.get_by_text(re.compile("^Thank you")).wait_for()
    page.get_by_text("No payments yet.").wait_for()  # read before Stripe confirms
    [session] = [s for s in stripe_api.sessions.values() if s["client_reference_id"] == "ned"]
    body, header = signed(event("checkout.session.completed", stripe_api.paid(session["id"])), HOOKS)
    assert web.call("POST", "/webhooks/stripe", raw=body, headers={"Stripe-Signature": header}).status == 200
    row = page.get_by_test_id("payment-row")
    row.wait_for(timeout=5000)  # live, not on a reload
    assert "paid" in row.inner_text()


def test_a_deployment_without_stripe_or_a_chain_offers_neither_on_the_payments_page(
        context: Any, offline: LocalServer) -> None:
    """No Stripe keys: the packs are listed, with no Pay button that could only fail (503), and the page says so.
    No chain read: no crypto section, and none of its lists is asked for (nor polled) to be refused."""
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    sign_in(page, offline, "pam", "payments")
    page.get_by_test_id("cards-off").wait_for()
    assert page.get_by_test_id("pack").count() == 3
    assert page.get_by_role("button", name=re.compile("^Pay by card")).count() == 0
    assert offline.call("GET", "/api/v1/payments/packs").json["methods"] == []
    page.wait_for_timeout(500)
    assert not [url for url in asked if "/api/v1/deposits" in url], asked
    assert page.get_by_role("heading", name="Pay with crypto").count() == 0


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime with no provider: its demo models, the image one included."""
    running = LocalServer(tmp_path_factory.mktemp("offline") / "data", RATE_LIMIT_PER_MINUTE="100000",
                          WELCOME_PER_IP_LIMIT="1000")
    yield running
    running.stop()


def test_an_image_task_links_to_its_images(context: Any, offline: LocalServer) -> None:
    token = funded(offline, "ian")
    made = offline.call("POST", "/api/v1/images", {"prompt": "a lighthouse", "size": "512x512", "n": 2},
                        token=token, headers={"Idempotency-Key": "ian-images"})
    assert made.status in (200, 202), made.json
    page = context.new_page()
    sign_in(page, offline, "ian", "tasks")
    link = page.get_by_test_id("task-images")
    link.wait_for()  # once the task has succeeded
    assert link.inner_text() == "2 images made: see them in Images"
    link.get_by_role("link").click()
    page.get_by_test_id("image").nth(1).wait_for()


def test_an_image_task_an_agent_started_links_to_the_agent(context: Any, offline: LocalServer) -> None:
    token = funded(offline, "ira")
    body = {"kind": "agent", "input": "draw a lighthouse at dusk", "model": "demo-chat"}
    assert offline.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "ira-agent"}).status \
        == 200
    page = context.new_page()
    sign_in(page, offline, "ira", "tasks")
    started_by = page.get_by_test_id("task-started-by")
    started_by.wait_for(timeout=30000)  # on the image task's card, once the agent has started it
    assert started_by.inner_text() == "Started by task ira-agent" and started_by.count() == 1
    started_by.get_by_role("link").click()
    agent = page.get_by_role("article", name="Task ira-agent")
    assert agent.get_by_test_id("task-agent").inner_text() == "Agent: research"  # chosen from its goal


def test_images_are_priced_made_shown_from_signed_urls_and_deleted(context: Any, offline: LocalServer) -> None:
    funded(offline, "rae")
    page = context.new_page()
    sign_in(page, offline, "rae", "images")
    page.get_by_text("No images yet.").wait_for()
    page.get_by_label("Prompt").fill("a lighthouse at dusk")
    page.get_by_label("Images", exact=True).select_option("2")
    quote = offline.call("GET", "/api/v1/images/quote?model=demo-image&size=512x512&n=2",
                         token=offline.token("rae")).json
    page.get_by_test_id("image-quote").get_by_text(f"{quote['price']['credits']} cr").wait_for()
    page.get_by_role("button", name="Generate").click()
    page.get_by_test_id("image-task").get_by_text(re.compile(": succeeded$")).wait_for()
    images = page.get_by_test_id("image")
    images.nth(1).wait_for()
    assert images.count() == 2
    thumbnail = images.first.get_by_role("img", name="a lighthouse at dusk")
    thumbnail.wait_for()
    page.wait_for_function("() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    assert "/media/" in thumbnail.get_attribute("src") and "sig=" in thumbnail.get_attribute("src")
    page.get_by_role("button", name=re.compile("^Delete image ")).first.click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=image]').length === 1")


def test_a_reply_on_its_way_stays_in_its_own_conversation(context: Any, web: LocalServer) -> None:
    """Opening another conversation while a reply streams: the reply goes on into its own conversation, and the one
    on screen keeps its own messages (the reply used to replace its last one)."""
    token = funded(web, "cal")
    made = [web.call("POST", "/api/v1/conversations", {"title": title}, token=token).json["id"]
            for title in ("Alpha", "Beta")]
    page = context.new_page()
    sign_in(page, web, "cal", "chat")
    page.get_by_role("button", name="Alpha", exact=True).click()
    page.get_by_role("button", name="Leave the conversation").wait_for()
    page.get_by_label("Message", exact=True).fill("DRIP say several words slowly")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("(streaming…)").wait_for()
    page.get_by_role("button", name="Beta", exact=True).click()  # while Alpha's reply streams
    page.get_by_role("heading", name="Beta").wait_for()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(web.call("GET", f"/api/v1/conversations/{made[0]}", token=token).json[
            "history"]) < 2:
        time.sleep(0.2)
    time.sleep(0.5)  # the reply's last pieces, had they reached the page
    assert "DRIP" not in page.get_by_test_id("messages").inner_text()
    page.get_by_role("button", name="Alpha", exact=True).click()
    page.get_by_text("echo: DRIP say several words slowly").wait_for()  # in its own conversation


def test_a_task_or_images_failed_for_want_of_credits_link_to_the_packs(context: Any, offline: LocalServer) -> None:
    """A chat refused for want of credits links to the packs; a task or images refused the same way (they fail as
    tasks, not with a 402) said only "needs X credits but only 0 are available"."""
    page = context.new_page()
    sign_in(page, offline, "nil", "tasks")  # no credits: the welcome bonus not claimed
    page.get_by_role("textbox", name="Prompt").fill("a task I cannot pay for")
    page.get_by_role("button", name="Submit the task").click()
    failed = page.get_by_test_id("task").first.locator(".error")
    failed.filter(has_text="but only 0 are available").wait_for(timeout=30000)
    assert failed.get_by_role("link", name="Buy credits").get_attribute("href") == "#/payments"
    page.goto(f"{offline.url}/#/images")
    page.get_by_label("Prompt").fill("images I cannot pay for")
    page.get_by_test_id("image-quote").get_by_text(re.compile(" cr")).wait_for()
    page.get_by_role("button", name="Generate").click()
    said = page.get_by_test_id("image-task")
    said.filter(has_text="but only 0 are available").wait_for()
    said.get_by_role("link", name="Buy credits").click()
    page.wait_for_url(re.compile("#/payments$"))


def test_a_chat_message_carries_an_attached_image_to_a_vision_model(context: Any, offline: LocalServer) -> None:
    from tests.media_samples import encoded, halves

    funded(offline, "vic")
    page = context.new_page()
    sign_in(page, offline, "vic", "chat")
    page.get_by_label("Message").fill("What colours are these?")
    page.get_by_label(re.compile("^Attach an image")).set_input_files(
        files=[{"name": "flag.png", "mimeType": "image/png", "buffer": encoded(halves(640, 320), "PNG")}])
    page.get_by_role("button", name="Send").click()
    page.get_by_test_id("charge").wait_for()
    said = page.get_by_test_id("messages").inner_text()
    assert "[image: flag.png]" in said and "[demo vision, not a real model]" in said
    assert "512×256 PNG" in said  # sent at demo-vision's largest side
    assert "demo-vision" in page.get_by_test_id("charge").inner_text()
    picker = page.get_by_label(re.compile("^Attach an image"))
    assert picker.evaluate("input => input.files.length") == 0  # sent with its message: the picker says so
    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.url) if "/uploads" in request.url else None)
    picker.set_input_files(files=[{"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * (11 << 20)}])
    page.get_by_text("this image is 11.5 MB: at most 10 MB").wait_for()  # said at once, before 11 MB are sent
    assert picker.evaluate("input => input.files.length") == 0 and not uploads


def test_a_message_of_spaces_is_said_to_be_empty_not_dropped_in_silence(context: Any, offline: LocalServer) -> None:
    page = context.new_page()
    sign_in(page, offline, "spacey", "chat")
    page.get_by_label("Message").fill("   ")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("write a message first: this one is only spaces").wait_for()
    assert page.get_by_test_id("messages").inner_text() == "No messages yet."


def test_an_image_refused_with_its_message_is_dropped_and_the_text_given_back(context: Any, offline: LocalServer
                                                                               ) -> None:
    """A file that is not an image is refused (422) with its message; it stayed attached and every later message
    failed with it, and the typed text was lost."""
    funded(offline, "vin")
    page = context.new_page()
    sign_in(page, offline, "vin", "chat")
    page.get_by_label("Message").fill("And this?")
    picker = page.get_by_label(re.compile("^Attach an image"))
    picker.set_input_files(files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image at all"}])
    page.get_by_role("button", name="Send").click()
    refused = page.get_by_role("alert").first
    refused.wait_for(timeout=30000)
    assert "not an image" in refused.inner_text(), refused.inner_text()
    assert page.get_by_label("Message").input_value() == "And this?"
    assert picker.evaluate("input => input.files.length") == 0
    page.get_by_label("Message").fill("just text now")
    page.get_by_role("button", name="Send").click()
    page.get_by_test_id("charge").wait_for()
    assert "just text now [image:" not in page.get_by_test_id("messages").inner_text()


def test_an_expired_or_forged_token_signs_out_with_the_servers_reason(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    use_token(page, web, web.token("fay", ttl_seconds=-120))
    notice = page.get_by_text(re.compile("^Signed out:"))
    notice.wait_for()
    assert "expired" in notice.inner_text().lower()
    token = web.token("fay")
    head, body, signature = token.split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps({**json.loads(base64.urlsafe_b64decode(body + "==")),
                                                       "admin": True}).encode()).decode().rstrip("=")
    use_token(page, web, f"{head}.{forged_body}.{signature}", "admin.html")
    notice = page.get_by_text(re.compile("^Signed out:"))
    notice.wait_for()
    assert "refused" in notice.inner_text() and "Signature verification failed" in notice.inner_text()
    assert page.get_by_label("User id").is_visible()  # back at the sign-in form, nothing of fay's shown
    use_token(page, web, "garbage.token.x")  # three parts, but no JSON in the middle: said in words
    page.get_by_text("this is not a token (its middle part is not base64url-encoded JSON)").wait_for()


def test_signing_out_in_one_tab_signs_out_the_others(context: Any, web: LocalServer) -> None:
    """The session is kept in localStorage, which every tab reads at its start; a tab signed out elsewhere went on
    as the user until reloaded (a shared machine's trap)."""
    first = context.new_page()
    sign_in(first, web, "tabby")
    second = context.new_page()
    second.goto(f"{web.url}/#/")
    second.get_by_text("Signed in as tabby").wait_for()
    first.get_by_role("button", name="Sign out").click()
    second.get_by_label("User id").wait_for()  # back at the sign-in form
    assert not second.get_by_text("Signed in as tabby").is_visible()
    sign_in(first, web, "tabitha")  # and in again, as another user: the other tab follows
    second.get_by_text("Signed in as tabitha").wait_for()


def test_every_kind_of_api_error_shows_its_problem_detail(context: Any, web: LocalServer) -> None:
    page = context.new_page()
    sign_in(page, web, "gus")
    statuses = [400, 402, 403, 404, 409, 413, 415, 429, 500, 503]
    def answering(status: int, detail: str) -> Any:
        def answer(route: Any) -> None:
            route.fulfill(status=status, content_type="application/problem+json",
                          body=json.dumps({"type": f"https://creditflow.dev/problems/x{status}", "title": "T",
                                           "status": status, "detail": detail}))
        return answer

    for status in statuses:
        detail = f"the detail of a {status}, as the server wrote it"
        page.route("**/api/v1/keys", answering(status, detail))
        page.goto(f"{web.url}/#/keys")
        page.reload()
        alert = page.get_by_role("alert").filter(has_text=detail)
        alert.wait_for()
        assert f"Error {status}" in alert.inner_text()
        page.unroute("**/api/v1/keys")
    # and real ones: an empty window (no error: nothing matches) and chat without credits (402)
    page.goto(f"{web.url}/#/history")
    page.get_by_label("From").fill("2026-05-02T10:00")
    page.get_by_label("Until").fill("2026-05-01T10:00")
    page.get_by_role("button", name="Apply the filters").click()
    page.get_by_text("No entries match these filters.").wait_for()
    page.goto(f"{web.url}/#/chat")
    page.get_by_label("Message", exact=True).fill("I have no credits")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert").filter(has_text="Error 402")
    alert.wait_for()
    assert "credits" in alert.inner_text()
    alert.get_by_role("link", name="Buy credits").click()  # the packs that cover it, one click away
    page.wait_for_url(re.compile("#/payments$"))


def test_the_console_offers_no_chain_scan_where_no_chain_is_configured(context: Any, web: LocalServer) -> None:
    """The scan would answer 503 crypto-not-configured: the console says no chain is configured instead."""
    page = context.new_page()
    use_token(page, web, web.token("root", admin=True), "admin.html")
    page.get_by_text("Signed in as root (admin)").wait_for()
    page.goto(f"{web.url}/admin.html#/payments")
    page.get_by_text("No chain is configured to scan").wait_for()
    assert page.get_by_role("button", name="Scan the chain now").count() == 0


def test_another_users_task_url_shows_not_found_and_leaks_nothing(context: Any, web: LocalServer) -> None:
    token = funded(web, "hal")
    secret = "hal's private prompt 7c1e"
    made = web.call("POST", "/api/v1/tasks", {"kind": "chat", "input": secret}, token=token,
                    headers={"Idempotency-Key": "hal-task-1"})
    assert made.status == 200, made.body
    page = context.new_page()
    sign_in(page, web, "ivy", "tasks/hal-task-1")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Error 404" in alert.inner_text()
    page.wait_for_timeout(500)  # whatever would arrive late arrives
    assert secret not in page.content(), page.content()
    assert "hal" not in page.inner_text("main").replace("'hal-task-1'", "")  # only the id that was asked for


def test_a_task_url_no_database_path_can_hold_is_not_retried_forever(context: Any, web: LocalServer) -> None:
    """A '.' in a typed task URL makes a path the realtime database refuses with 400: the page said "Connection lost:
    reconnecting…" and asked again forever, beside the 404 that said there is no such task."""
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/realtime/tasks/" in r.url else None)
    sign_in(page, web, "dot", "tasks/a.b")
    page.get_by_role("alert").filter(has_text="Error 404").wait_for()
    status = page.locator("[data-status]")
    page.wait_for_function("() => document.querySelector('[data-status]').dataset.status === 'refused'",
                           timeout=5000)
    page.wait_for_timeout(3000)  # long past the first retries' back-off
    assert status.get_attribute("data-status") == "refused" and len(asked) <= 3, asked


class CuttableProxy:
    """A TCP relay on loopback in front of the runtime: cut() closes every connection through it, as a network
    that drops does; new connections go through again."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            cutting, self.open = self.open, []
        for sock in cutting:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_a_cut_network_is_said_and_the_stream_reconnects_and_goes_on(context: Any, web: LocalServer) -> None:
    proxy = CuttableProxy(web.url)
    try:
        page = context.new_page()
        sign_in(page, LocalServerAt(proxy.url, web), "jo")
        page.get_by_text("Updates: Live").wait_for()
        proxy.cut()
        page.get_by_text("Connection lost: reconnecting…").wait_for(timeout=10000)
        page.get_by_text("Reconnected: live again").wait_for(timeout=15000)
        funded(web, "jo")  # a change after the cut arrives over the new stream
        page.wait_for_function("() => document.querySelector('[data-testid=available]').textContent === '1000 cr'")
    finally:
        proxy.close()


class LocalServerAt:
    """The runtime seen at another address (through the proxy)."""

    def __init__(self, url: str, server: LocalServer) -> None:
        self.url = url
        self.server = server


def test_dev_sign_in_gives_user_tokens_only_and_only_where_it_is_offered(web: LocalServer,
                                                                          tmp_path: Path) -> None:
    reply = web.call("POST", "/api/v1/dev/sign-in", {"uid": "kim"})
    assert reply.status == 200
    token = reply.json["token"]
    me = web.call("GET", "/api/v1/me", token=token).json
    assert me["uid"] == "kim" and me["admin"] is False
    assert web.call("POST", "/api/v1/dev/sign-in", {"uid": "kim", "admin": True}).status == 400  # no such field
    refused = web.call("POST", "/api/v1/dev/sign-in", {"uid": "john.doe"})
    assert refused.status == 403 and refused.json["type"].endswith("/unsupported-user-id")
    port = web.url.rsplit(":", 1)[1]
    assert web.call("POST", "/api/v1/dev/sign-in", {"uid": "kim"}, headers={  # the app's own page
        "Origin": web.url, "Host": f"localhost:{port}"}).status == 200
    for headers in ({"Origin": "https://evil.example"},  # another site's page, in the developer's browser
                    {"Origin": "null"},  # a sandboxed frame or a file
                    {"Host": f"evil.example:{port}"}):  # another site's name rebound to 127.0.0.1
        other = web.call("POST", "/api/v1/dev/sign-in", {"uid": "kim"}, headers=headers)
        assert other.status == 403 and "token" not in other.json and "this machine" in other.json["detail"], headers
    everywhere = LocalServer(tmp_path / "open", CREDITFLOW_HOST="0.0.0.0")  # not loopback: not offered
    try:
        assert everywhere.call("GET", "/api/v1/web/config").json["devSignIn"] is False
        closed = everywhere.call("POST", "/api/v1/dev/sign-in", {"uid": "kim"})
        assert closed.status == 404 and "loopback" in closed.json["detail"]
    finally:
        everywhere.stop()


def test_without_a_build_the_home_page_says_to_run_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from creditflow.bootstrap import build
    from creditflow.config import Settings
    from creditflow.entrypoints.http import app as app_module
    from creditflow.entrypoints.http import web_routes

    monkeypatch.setattr(web_routes, "WEB_DIST", tmp_path / "missing")
    client = app_module.create_app(build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"))).test_client()
    page = client.get("/")
    assert page.status_code == 200 and "Run <code>make</code>" in page.text and 'href="/api/v1/docs"' in page.text
    assert client.get("/app.js").status_code == 404


def test_verify_fails_when_the_server_answers_with_another_entry(context: Any, web: LocalServer) -> None:
    """A server asked to prove one entry that answers with the proof of another (valid) entry of the caller must not
    get the first one marked verified."""
    funded(web, "eve")
    granted = web.call("POST", "/api/v1/admin/grants", {"uid": "eve", "amount": "1"},
                       token=web.token("root", admin=True), headers={"Idempotency-Key": "eve-second"}).json
    page = context.new_page()
    sign_in(page, web, "eve", "history")
    rows = page.get_by_test_id("entry")
    rows.nth(1).wait_for()
    older = rows.nth(1).get_attribute("data-entry")
    assert rows.first.get_attribute("data-entry") == granted["entry"] != older
    honest = web.call("GET", f"/api/v1/credits/verify/{older}", token=web.token("eve")).json
    page.route(f"**/api/v1/credits/verify/{granted['entry']}", lambda route: route.fulfill(json=honest))
    row = rows.first
    row.get_by_role("button", name=f"Verify entry {granted['entry']}").click()
    result = row.get_by_test_id("verification")
    result.wait_for()
    assert result.get_attribute("data-ok") == "false", result.inner_text()
    assert older in result.locator("[data-check=canonical]").inner_text()
