"""Card payments through Stripe's SDK (v16, StripeClient): customers, Checkout Sessions, signed webhook events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ...domain.errors import IdempotencyConflict
from ...domain.money import format_credits
from ...domain.payments import CardDeclined, InvalidWebhook, Pack, PaymentProviderFailed
from ...domain.refunds import UNDONE, ListedRefund

TOLERANCE_SECONDS = 300  # how old, or how far ahead, a webhook's signed timestamp may be


class StripeCards:
    def __init__(self, secret_key: str, webhook_secret: str, api_base: str | None = None,
                 now: Callable[[], float] = time.time) -> None:
        import stripe

        self._stripe = stripe
        self._client = stripe.StripeClient(secret_key, base_addresses={"api": api_base} if api_base else None,
                                           max_network_retries=2)
        self._webhook_secret = webhook_secret
        self._now = now

    def create_customer(self, uid: str, key: str) -> str:
        with self._provider_errors():
            customer = self._client.v1.customers.create(params={"metadata": {"uid": uid}},
                                                        options={"idempotency_key": key})
        return str(customer.id)

    def create_checkout(self, *, uid: str, customer: str, pack: Pack, success_url: str, cancel_url: str,
                        key: str, save_card: bool = False) -> tuple[str, str]:
        metadata = {"uid": uid, "pack": pack.id, "credits": str(pack.credits)}
        intent: Any = {"metadata": metadata}
        if save_card:  # the card is attached to the customer, for auto top-ups
            intent["setup_future_usage"] = "off_session"
        with self._provider_errors():
            session = self._client.v1.checkout.sessions.create(params={
                "mode": "payment", "customer": customer, "client_reference_id": uid,
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": pack.currency, "unit_amount": pack.price,
                    "product_data": {"name": f"{format_credits(pack.credits)} credits"}}}],
                "metadata": metadata, "payment_intent_data": intent,
                "success_url": success_url, "cancel_url": cancel_url}, options={"idempotency_key": key})
        return str(session.id), str(session.url)

    def saved_card(self, customer: str) -> str | None:
        with self._provider_errors():
            cards = self._client.v1.payment_methods.list(params={"customer": customer, "type": "card", "limit": 1})
        return str(cards.data[0].id) if cards.data else None

    def charge_saved_card(self, *, uid: str, customer: str, card: str, pack: Pack, key: str) -> str:
        metadata = {"uid": uid, "pack": pack.id, "credits": str(pack.credits), "auto_top_up": "1"}
        try:
            with self._provider_errors():
                intent = self._client.v1.payment_intents.create(params={
                    "amount": pack.price, "currency": pack.currency, "customer": customer, "payment_method": card,
                    "off_session": True, "confirm": True, "metadata": metadata}, options={"idempotency_key": key})
        except PaymentProviderFailed as failed:
            if isinstance(failed.__cause__, self._stripe.CardError):
                raise CardDeclined(f"Stripe declined the saved card: {failed.__cause__.user_message or ''}".strip(),
                                   decline=str(getattr(failed.__cause__, "code", "") or "")) from failed.__cause__
            raise
        return str(intent.id)

    def refunds(self, payment_intent: str) -> list[ListedRefund]:
        with self._provider_errors():
            listed = self._client.v1.refunds.list(params={"payment_intent": payment_intent, "limit": 100})
            return [ListedRefund(str(r.id), int(r.amount), int(r.created), r.status in UNDONE)
                    for r in listed.auto_paging_iter()]

    @contextmanager
    def _provider_errors(self) -> Iterator[None]:
        """Stripe refusing or failing is a 502 that says what Stripe said, not a 500; an idempotency key of ours
        that Stripe saw with other parameters is the caller's key reused for another request: a conflict."""
        try:
            yield
        except self._stripe.IdempotencyError as error:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request: send a new key for a "
                                      "new request (a retry sends the same request again)") from error
        except self._stripe.StripeError as error:
            raise PaymentProviderFailed(f"Stripe: {error.user_message or error}") from error

    def event(self, body: bytes, signature: str) -> dict[str, Any]:
        stamp = signed_at(signature)
        if stamp is not None and stamp > self._now() + TOLERANCE_SECONDS:  # the SDK checks only the age
            raise InvalidWebhook("the signature's timestamp is in the future beyond the tolerance")
        try:
            self._stripe.Webhook.construct_event(body, signature, self._webhook_secret, TOLERANCE_SECONDS)
        except self._stripe.SignatureVerificationError as error:
            raise InvalidWebhook(f"Stripe-Signature refused: {error.user_message or error}") from error
        except (ValueError, AttributeError, TypeError) as error:  # the SDK reads a signed `[]` or `1` as an object
            raise InvalidWebhook("the body is not a JSON event") from error
        event = json.loads(body)
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(
                event.get("type"), str) or not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise InvalidWebhook("an event needs an id, a type and data.object")
        return event


def signed_at(signature: str) -> int | None:
    """The `t=` timestamp of a Stripe-Signature header (None when it has none: the SDK refuses that)."""
    for part in signature.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():  # "²" is a digit to isdigit(), not to int()
            return int(value)
    return None
