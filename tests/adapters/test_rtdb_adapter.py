"""The production Realtime Database adapter, through firebase-admin's own client, against a recording HTTP server
(its full contract runs against the local runtime's Realtime Database endpoint)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from creditflow.adapters.firebase.rtdb import RealtimeDatabase
from tests.fake_openai import start_serving


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, object]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.seen.append((self.command, self.path.split("?")[0], body))  # type: ignore[attr-defined]
        payload = b"null"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorded() -> Iterator[tuple[RealtimeDatabase, list]]:
    import firebase_admin
    from google.auth.credentials import AnonymousCredentials

    from creditflow.adapters.firebase.auth import _Anonymous

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []  # type: ignore[attr-defined]
    start_serving(server)
    url = f"http://127.0.0.1:{server.server_port}?ns=demo-creditflow"
    app = firebase_admin.initialize_app(_Anonymous(AnonymousCredentials()), {"databaseURL": url},
                                        name=f"rtdb-{uuid.uuid4().hex}")
    try:
        yield RealtimeDatabase(url, app=app), server.seen  # type: ignore[attr-defined]
    finally:
        firebase_admin.delete_app(app)
        server.shutdown()
        server.server_close()


def test_setting_none_deletes_the_path(recorded: tuple[RealtimeDatabase, list]) -> None:
    tree, seen = recorded
    tree.set("/notifications/alice/n1", {"kind": "low-balance"})
    tree.set("/notifications/alice/n1", None)  # firebase-admin itself refuses set(None) before sending anything
    assert seen == [("PUT", "/notifications/alice/n1.json", {"kind": "low-balance"}),
                    ("DELETE", "/notifications/alice/n1.json", None)]
