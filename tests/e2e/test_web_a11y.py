"""Every page of the app and the console, at 360 and 1280 px: keyboard-only reach of every action with a visible
focus, no serious axe-core violation (axe injected from web/node_modules), nothing wider than the screen, and a
screenshot of each in tests/e2e/screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_web import AXE, SHOTS, USER_PAGES, browser, use_token  # noqa: F401  (a fixture)
from tests.fake_openai import FakeOpenAI

ADMIN_PAGES = ["", "ledger", "models", "dead-letters", "shortfalls", "payments", "users"]
WIDTHS = (360, 1280)
INTERACTIVE = ("a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), "
               "textarea:not([disabled]), [tabindex]:not([tabindex='-1'])")


@pytest.fixture(scope="module")
def lived_in(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A runtime where 'kay' has credits, an entry of each common kind, a key, a conversation and a task."""
    running = LocalServer(tmp_path_factory.mktemp("a11y") / "data", AI_PLATFORM_API_KEY="test-key",
                          AI_PLATFORM_BASE_URL=upstream.url, RATE_LIMIT_PER_MINUTE="100000")
    token = running.token("kay")
    assert running.call("POST", "/api/v1/credits/welcome-bonus", {}, token=token).status == 200
    assert running.call("POST", "/api/v1/keys", {"name": "laptop"}, token=token).status == 200
    assert running.call("POST", "/api/v1/conversations", {"title": "Trip plans"}, token=token).status == 200
    assert running.call("POST", "/api/v1/chat", {"messages": [{"role": "user", "content": "hello"}]}, token=token,
                        headers={"Idempotency-Key": "kay-1"}).status == 200
    assert running.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "summarise"}, token=token,
                        headers={"Idempotency-Key": "kay-task"}).status == 200
    yield running
    running.stop()


def settle(page: Any) -> None:
    """Wait until nothing on the page says it is loading."""
    page.wait_for_function("() => !document.querySelector('main').innerText.includes('Loading')")
    page.wait_for_timeout(150)


def keyboard_reaches_every_action(page: Any, where: str) -> None:
    count = page.evaluate(f"""() => {{
        const all = [...document.querySelectorAll("{INTERACTIVE}")].filter((el) => el.offsetParent !== null ||
            el === document.activeElement);
        all.forEach((el, i) => el.setAttribute('data-kbd', i));
        return all.length;
    }}""")
    assert count > 0, where
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    reached: set[str] = set()
    unfocused_outline: list[str] = []
    for _ in range(count * 2 + 10):
        page.keyboard.press("Tab")
        focus = page.evaluate("""() => { const el = document.activeElement; if (!el || el === document.body)
            return null; const style = getComputedStyle(el); return [el.getAttribute('data-kbd'),
            style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2, el.outerHTML.slice(0, 80)]; }""")
        if focus is None or focus[0] is None:
            continue
        reached.add(focus[0])
        if not focus[1]:
            unfocused_outline.append(focus[2])
        if len(reached) == count:
            break
    missing = page.evaluate("(reached) => [...document.querySelectorAll('[data-kbd]')].filter((el) => "
                            "!reached.includes(el.getAttribute('data-kbd'))).map((el) => el.outerHTML.slice(0, 120))",
                            sorted(reached))
    assert not missing, f"{where}: Tab never reaches {missing}"
    assert not unfocused_outline, f"{where}: no visible focus on {unfocused_outline}"


def figures_cut(page: Any) -> list[str]:
    """Figures, one-word column names and buttons in tables that wrap onto a second line (a narrow screen once
    broke "0.003246 cr" into three, and "Amount" into two): a table too wide for the screen scrolls in its frame."""
    return page.evaluate("""() => [...document.querySelectorAll('.table-wrap :is(td.num, th, td button)')]
    .filter((el) => {
        if (el.tagName === 'TH' && el.textContent.trim().includes(' ')) return false;
        const range = document.createRange();
        range.selectNodeContents(el);
        return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
    }).map((el) => el.textContent)""")


def axe_serious(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})).violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`)""")
    return found


@contextmanager
def signed_in(chromium: Any, server: LocalServer, width: int, token: str, banner: str, path: str = "") -> Iterator[Any]:
    """A page of a fresh browser context `width` px wide, signed in with `token` (it shows `banner`)."""
    context = chromium.new_context(viewport={"width": width, "height": 800})
    context.set_default_timeout(15000)
    try:
        page = context.new_page()
        use_token(page, server, token, path)
        page.get_by_text(banner).wait_for()
        SHOTS.mkdir(parents=True, exist_ok=True)
        yield page
    finally:
        context.close()


def check_page(page: Any, where: str, width: int, shot: str) -> None:
    """The page fits the screen with nothing in its tables cut in two, has no serious axe finding, and the keyboard
    reaches every action; a full-page screenshot is kept (git-ignored) to look at."""
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, f"{where} is wider"
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    assert figures_cut(page) == [], f"{where}: cut across lines"
    assert axe_serious(page) == [], where
    keyboard_reaches_every_action(page, where)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_user_page_is_keyboard_reachable_accessible_and_fits(browser: Any, lived_in: LocalServer,  # noqa: F811
                                                                   width: int) -> None:
    with signed_in(browser, lived_in, width, lived_in.token("kay"), "Signed in as kay") as page:
        for name in USER_PAGES:
            page.goto(f"{lived_in.url}/#/{name}")
            settle(page)
            check_page(page, f"user page '{name or 'balance'}' at {width} px", width,
                       f"app-{name or 'balance'}-{width}.png")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_console_page_is_keyboard_reachable_accessible_and_fits(browser: Any, lived_in: LocalServer,  # noqa: F811
                                                                      width: int) -> None:
    with signed_in(browser, lived_in, width, lived_in.token("root", admin=True), "Signed in as root (admin)",
                   "admin.html") as page:
        for name in ADMIN_PAGES:
            page.goto(f"{lived_in.url}/admin.html#/{name}")
            settle(page)
            if name == "users":  # a looked-up user shows the grant form and their entries
                page.get_by_label("User id").fill("kay")
                page.get_by_role("button", name="Look up").click()
                page.get_by_text("Grant credits").wait_for()
            check_page(page, f"console page '{name or 'usage'}' at {width} px", width,
                       f"admin-{name or 'usage'}-{width}.png")


def test_the_sign_in_page_is_accessible_too(browser: Any, lived_in: LocalServer) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 360, "height": 800})
    try:
        page = context.new_page()
        page.goto(lived_in.url + "/")
        page.get_by_text("local runtime's dev sign-in").wait_for()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "sign-in-360.png"), full_page=True)
        assert axe_serious(page) == []
        keyboard_reaches_every_action(page, "sign-in at 360 px")
        page.keyboard.press("Shift+Tab")  # and the form works from the keyboard alone
        page.get_by_label("User id").focus()
        page.keyboard.type("lee")
        page.keyboard.press("Enter")
        page.get_by_text("Signed in as lee").wait_for()
    finally:
        context.close()


def test_sending_from_the_keyboard_leaves_the_focus_in_the_text_box(browser: Any, lived_in: LocalServer  # noqa: F811
                                                                    ) -> None:
    """Send and Submit are disabled while they work: the focus they held fell to the page, and a keyboard user had
    to find the box again for the next message. It goes back to the box the next message is typed in."""
    with signed_in(browser, lived_in, 1280, lived_in.token("kay"), "Signed in as kay", "#/chat") as page:
        focused = "() => document.activeElement.id"
        page.get_by_label("Message", exact=True).focus()
        page.keyboard.type("hello from the keyboard")
        page.get_by_role("button", name="Send").focus()
        page.keyboard.press("Enter")
        page.get_by_test_id("charge").wait_for()
        assert page.evaluate(focused) == "chat-text"
        page.keyboard.type("and again")  # straight on, no Tab needed
        assert page.get_by_label("Message", exact=True).input_value() == "and again"
        page.goto(f"{lived_in.url}/#/tasks")
        page.get_by_role("textbox", name="Prompt").focus()
        page.keyboard.type("a task from the keyboard")
        page.get_by_role("button", name="Submit the task").focus()
        page.keyboard.press("Enter")
        page.get_by_text("Submitted task").wait_for()
        assert page.evaluate(focused) == "task-input"


FOCUSED = """() => { const el = document.activeElement;
    return el === document.body ? 'body' : `${el.tagName} ${el.textContent.trim().replace(/\\s+/g, ' ')}`; }"""


def focus_lands(page: Any, expected: str) -> None:
    """The focus, once the page has settled after a button's action (within 5 s), is on `expected` (tag, text)."""
    for _ in range(50):
        if page.evaluate(FOCUSED) == expected:
            return
        page.wait_for_timeout(100)
    assert page.evaluate(FOCUSED) == expected


def test_a_button_its_action_disables_or_removes_leaves_the_focus_in_its_card(
        browser: Any, lived_in: LocalServer) -> None:  # noqa: F811
    """Pressed from the keyboard, a button disabled while it works ("Claiming…") or removed by what it did (the
    bonus claimed, a key revoked, a task cancelled) had the focus fall to <body>: a keyboard or screen-reader user
    lost their place and started again from the top. It lands on what the card says now, or on its heading."""
    token = lived_in.token("fay")
    assert lived_in.call("POST", "/api/v1/keys", {"name": "old laptop"}, token=token).status == 200
    with signed_in(browser, lived_in, 1280, token, "Signed in as fay") as page:
        page.get_by_role("button", name="Claim the welcome bonus: 1000 cr").focus()
        page.keyboard.press("Enter")
        page.get_by_role("button", name=re.compile("Claim the welcome bonus")).wait_for(state="detached")
        focus_lands(page, "DIV Welcome bonus: 1000 cr granted.")  # the message the claim left, in its card

        page.goto(f"{lived_in.url}/#/keys")
        page.get_by_role("button", name="Revoke key old laptop").focus()
        page.keyboard.press("Enter")
        page.get_by_role("cell", name=re.compile("^revoked")).wait_for()
        focus_lands(page, "H2 Your keys")  # the button was replaced by the words "revoked …": the table's heading
        page.keyboard.press("Tab")  # and Tab goes on from there, not from the top of the page
        assert page.evaluate("() => document.activeElement.closest('section')?.getAttribute('aria-labelledby')"
                             ) == "keys-title"

        made = lived_in.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "DRIP " + "slowly " * 40},
                             token=token, headers={"Idempotency-Key": "fay-drip"})
        assert made.status == 200, made.body
        page.goto(f"{lived_in.url}/#/tasks")
        task = page.get_by_role("article", name="Task fay-drip")
        task.get_by_role("button", name="Cancel this task").focus()
        page.keyboard.press("Enter")
        task.get_by_role("button", name="Cancel this task").wait_for(state="detached", timeout=20000)
        assert task.get_attribute("data-state") == "cancelled"
        focus_lands(page, "H3 chat task fay-drip")  # the cancelled task's card, by its heading
