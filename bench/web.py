"""The web app's figures beside their targets: bundle sizes (gzip) of the user app and the admin console, the time
from a spend to the balance repainting in an open page, and the time to first render on a cold load. It starts a
local runtime on a fresh data folder and drives Debian's Chromium with Playwright (make bench-web builds web/dist
and installs Chromium first when it can)."""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
DIST = ROOT / "web" / "dist"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SPENDS = 30
COLD_LOADS = 7


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


def bundle(entry: str, page: str, css: list[str]) -> tuple[int, int, list[str]]:
    """gzip bytes of what a page loads up front (its HTML, CSS, entry and the chunks it imports statically), and
    of what it may load later (dynamic imports, e.g. the Firebase Auth SDK where Firebase is configured)."""
    meta = json.loads((DIST / "meta.json").read_text())["outputs"]
    upfront, later, seen = set(), set(), set()
    todo = [f"dist/{entry}"]
    while todo:
        out = todo.pop()
        if out in seen:
            continue
        seen.add(out)
        upfront.add(out)
        for imported in meta[out]["imports"]:
            if imported["kind"] == "dynamic-import":
                later.add(imported["path"])
            else:
                todo.append(imported["path"])
    files = [DIST / page, *(DIST / c for c in css), *(ROOT / "web" / out for out in sorted(upfront))]
    return sum(gz(f) for f in files), sum(gz(ROOT / "web" / out) for out in later - upfront), sorted(later)


def row(what: str, value: str, target: str) -> None:
    print(f"  {what:<66} {value:>9}   target {target}")


def main() -> int:
    if not (DIST / "meta.json").is_file():
        print("the web app is not built: run make web", file=sys.stderr)
        return 1
    user, user_later, lazy = bundle("app.js", "index.html", ["styles.css"])
    admin, _, _ = bundle("admin.js", "admin.html", ["styles.css", "uplot.css"])
    print("Bundles (gzip -9, everything a page loads before it renders):")
    row("user app (index.html, styles, app.js and its chunks)", f"{user / 1024:.1f} KB", "<= 200 KB")
    row("admin console (admin.html, styles, uPlot css, admin.js, chunks)", f"{admin / 1024:.1f} KB", "none")
    row(f"loaded only with Firebase sign-in ({', '.join(Path(p).name for p in lazy)})", f"{user_later / 1024:.1f} KB",
        "none")

    from playwright.sync_api import sync_playwright

    from tests.e2e.server import LocalServer

    server = LocalServer(Path(tempfile.mkdtemp(prefix="bench-web-")) / "data", RATE_LIMIT_PER_MINUTE="1000000")
    try:
        token = server.token("bench")
        assert server.call("POST", "/api/v1/credits/welcome-bonus", {}, token=token).status == 200
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            def signed_in(uid: str, token: str) -> str:
                session = json.dumps({"kind": "token", "how": "dev", "token": token, "uid": uid, "admin": False,
                                      "expires": None})
                return f"localStorage.setItem('creditflow.session', {json.dumps(session)})"

            init = signed_in("bench", token)
            cold, painted = [], []
            for n in range(COLD_LOADS):  # a new context each time: empty cache, a first visit
                context = browser.new_context()
                # a user each: a closed page's streams hold their slots (8 per user) until the next keep-alive
                context.add_init_script(signed_in(f"cold{n}", server.token(f"cold{n}")))
                page = context.new_page()
                page.goto(server.url + "/")
                page.wait_for_function("() => /\\d/.test(document.querySelector('[data-testid=available]')"
                                       "?.textContent || '')")
                timing = page.evaluate("""() => ({
                    balance: performance.now(),
                    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime})""")
                cold.append(timing["balance"])
                painted.append(timing["fcp"] or timing["balance"])
                context.close()

            context = browser.new_context()
            context.add_init_script(init)
            page = context.new_page()
            page.goto(server.url + "/")
            page.get_by_text("Updates: Live").wait_for()
            page.wait_for_function("() => /\\d/.test(document.querySelector('[data-testid=available]')"
                                   "?.textContent || '')")
            repaint, whole = [], []
            for n in range(SPENDS):
                # in the page: place a hold (a spend of available credits), then time until the figure changes
                # and the frame after it is painted
                took = page.evaluate("""async ([token, n]) => {
                    const shown = document.querySelector('[data-testid=available]');
                    const before = shown.textContent;
                    const changed = new Promise((resolve) => new MutationObserver((_, o) => {
                        if (shown.textContent !== before) { o.disconnect(); resolve(performance.now()); }
                    }).observe(shown, { childList: true, characterData: true, subtree: true }));
                    const sent = performance.now();
                    const response = await fetch('/api/v1/credits/reserve', { method: 'POST', headers: {
                        'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json',
                        'Idempotency-Key': 'bench-' + n },
                        body: JSON.stringify({ amount: '0.01', category: 'chat' }) });
                    const answered = performance.now();
                    if (!response.ok) throw new Error('reserve: ' + response.status);
                    const at = await changed;
                    await new Promise((r) => requestAnimationFrame(() => r()));
                    return [answered, at, performance.now(), sent];
                }""", [token, n])
                repaint.append(took[2] - took[0])
                whole.append(took[2] - took[3])
            context.close()
            browser.close()
    finally:
        server.stop()

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]

    print(f"Live balance ({SPENDS} holds placed from the page; from the API's answer to the next painted frame):")
    row("spend -> balance repainted, p50", f"{statistics.median(repaint):.0f} ms", "<= 300 ms")
    row("spend -> balance repainted, p90", f"{p(repaint, 90):.0f} ms", "none")
    row("request sent -> balance repainted (the API call included), p50", f"{statistics.median(whole):.0f} ms",
        "none")
    print(f"Cold load ({COLD_LOADS} first visits, empty cache, signed in):")
    row("first contentful paint, median", f"{statistics.median(painted):.0f} ms", "none")
    row("balance rendered (config, /balances stream, REST), median", f"{statistics.median(cold):.0f} ms",
        "<= 1000 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
