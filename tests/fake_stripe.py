"""A Stripe API server the tests start on loopback, for what localstripe lacks: Checkout Sessions (and the
Customers they name). It takes the SDK's form encoding (`a[b][0][c]=v`) and answers in Stripe's object shape;
the SDK is pointed at it with STRIPE_API_BASE. It keeps what it was sent, and answers an Idempotency-Key it saw
before with the same object, or refuses it when the parameters differ, as Stripe does. Also: Stripe's webhook
signature scheme, to sign test events."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.fake_openai import QuietServer, send_json, start_serving, stop_serving


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to nested data: `line_items[0][price_data][currency]=usd`."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        parts = name.replace("]", "").split("[")
        node: Any = out
        for here, after in zip(parts, [*parts[1:], None], strict=True):
            key: Any = int(here) if here.isdigit() else here
            if after is None:
                node[key] = value
                break
            if isinstance(node, dict):
                node = node.setdefault(key, [] if after.isdigit() else {})
            else:
                while len(node) <= key:
                    node.append([] if after.isdigit() else {})
                node = node[key]
    return out


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []  # (path, body, headers)
        self.answers: dict[str, dict[str, Any]] = {}  # by Idempotency-Key
        self.bodies: dict[str, tuple[str, dict[str, Any]]] = {}  # what each key was first used with
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, list[dict[str, Any]]] = {}  # by payment intent: its Refunds as Stripe lists them
        self.connections: list[socket.socket] = []
        self.failing = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                outer.connections.append(self.connection)

            def do_GET(self) -> None:
                outer.requests.append((self.path, {}, dict(self.headers)))
                if self.path.startswith("/v1/payment_methods"):  # no card is ever saved here (see localstripe)
                    return send_json(self, 200, {"object": "list", "data": [], "has_more": False,
                                                 "url": "/v1/payment_methods"})
                if self.path.startswith("/v1/refunds?"):  # a payment's refunds, newest first, as a test set them
                    intent = dict(parse_qsl(self.path.split("?", 1)[1])).get("payment_intent", "")
                    listed = sorted(outer.refunds.get(intent, []), key=lambda r: -int(r["created"]))
                    return send_json(self, 200, {"object": "list", "data": listed, "has_more": False,
                                                 "url": "/v1/refunds"})
                send_json(self, 404, {"error": {"type": "invalid_request_error",
                                                "message": f"Unrecognized request URL (GET: {self.path})"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                body = unflatten(parse_qsl(raw, keep_blank_values=True))
                outer.requests.append((self.path, body, dict(self.headers)))
                if outer.failing:
                    return send_json(self, 500, {"error": {"type": "api_error", "message": "Stripe is down"}})
                key = self.headers.get("Idempotency-Key", "")
                if key in outer.answers and outer.bodies.get(key) != (self.path, body):  # as Stripe refuses it
                    return send_json(self, 400, {"error": {"type": "idempotency_error", "message": (
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different "
                        "request.")}})
                if key in outer.answers:
                    return send_json(self, 200, outer.answers[key])
                outer.bodies[key] = (self.path, body)
                if self.path == "/v1/customers":
                    answer = {"id": f"cus_{uuid.uuid4().hex[:14]}", "object": "customer",
                              "metadata": body.get("metadata", {})}
                elif self.path == "/v1/checkout/sessions":
                    answer = outer._session(body)
                else:
                    return send_json(self, 404, {"error": {"type": "invalid_request_error",
                                                           "message": f"Unrecognized request URL (POST: {self.path})"}})
                outer.answers[key] = answer
                send_json(self, 200, answer)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        start_serving(self.server)

    def _session(self, body: dict[str, Any]) -> dict[str, Any]:
        item = body["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session = {"id": session_id, "object": "checkout.session", "mode": body["mode"], "status": "open",
                   "payment_status": "unpaid", "amount_total": amount, "currency": item["price_data"]["currency"],
                   "customer": body.get("customer"), "client_reference_id": body.get("client_reference_id"),
                   "metadata": body.get("metadata", {}), "payment_intent": None,
                   "success_url": body["success_url"], "cancel_url": body["cancel_url"],
                   "url": f"https://checkout.stripe.test/c/pay/{session_id}"}
        self.sessions[session_id] = session
        return session

    def paid(self, session_id: str) -> dict[str, Any]:
        """The session as Stripe describes it once paid: complete, with its PaymentIntent."""
        return {**self.sessions[session_id], "status": "complete", "payment_status": "paid",
                "payment_intent": f"pi_{session_id[-16:]}"}

    def stop(self) -> None:
        stop_serving(self.server, self.connections)


def signed(event: dict[str, Any], secret: str, at: int | None = None) -> tuple[bytes, str]:
    """An event's body and its Stripe-Signature header."""
    body = json.dumps(event).encode()
    return body, signature_of(body, secret, at)


def signature_of(body: bytes, secret: str, at: int | None = None) -> str:
    """Stripe's v1 scheme: HMAC-SHA256 of `t.body` with the endpoint's secret."""
    t = int(time.time()) if at is None else at
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def event(kind: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
            "api_version": "2026-10-28.endive", "created": int(time.time()), "data": {"object": data}}
