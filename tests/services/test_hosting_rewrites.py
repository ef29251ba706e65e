"""On Firebase the web app is served by Hosting, which sends a path to the api function only where firebase.json
rewrites it: every route the function serves there must be rewritten, or it is Hosting's 404 (Stripe's webhook
was: its events never reached the ledger)."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

from creditflow.bootstrap import Platform
from tests.conftest import SteppedClock, make_platform

ROOT = Path(__file__).resolve().parents[2]
# the local runtime's own: Realtime Database, Cloud Storage's signed URLs and Hosting serve these on Firebase
LOCAL_ONLY = ("/realtime", "/media/", "/static/", "/chunks/", "/dev/", "/api/v1/dev/")


def test_every_route_the_api_function_serves_reaches_it_through_hosting(tmp_path: Path, clock: SteppedClock) -> None:
    from creditflow.entrypoints.http.app import create_app

    platform: Platform = make_platform(tmp_path / "data", clock)
    try:
        rules = [rule.rule for rule in create_app(platform).url_map.iter_rules()]
    finally:
        platform.store.close()  # type: ignore[attr-defined]
    hosting = json.loads((ROOT / "firebase.json").read_text())["hosting"]
    to_api = [r["source"] for r in hosting["rewrites"] if r.get("function", {}).get("functionId") == "api"]
    served = [rule for rule in rules if rule.count("/") > 1 and not rule.startswith(LOCAL_ONLY)]
    assert "/webhooks/stripe" in served and "/api/v1/credits/balance" in served
    missed = [rule for rule in served if not any(fnmatch(rule, source.replace("**", "*")) for source in to_api)]
    assert missed == []
