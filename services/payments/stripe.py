"""Stripe: Checkout Sessions out, signed webhooks in, both through the official `stripe` package."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe

import codes
from errors import ApiError
from models import OrderModel
from services.payments.base import EnvelopeAnswers, Notification, PaymentRequest, check_timestamp

log = logging.getLogger("flask_api.payments")

HEADER = "Stripe-Signature"
# checkout.session.completed pays at once for cards; delayed methods (bank debits)
# complete "unpaid" and pay later with async_payment_succeeded.
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# Stripe accepts a session expiry between 30 minutes and 24 hours ahead (with a minute's margin).
SESSION_EXPIRY = (30 * 60 + 60, 24 * 3600 - 60)
SESSION_END_STEP = 300  # seconds


def _signed_timestamp(header: str) -> int:
    """The t= of a header the stripe package has verified: the first one, as the package reads it."""
    return int(next(item.split("=", 2)[1] for item in header.split(",") if item.split("=", 2)[0] == "t"))


def session_end(order: OrderModel, now: float) -> int:
    """When a Checkout Session for the order ends: with the order, or as close after it as Stripe
    allows (a session lasts 30 minutes to 24 hours from its creation). Left to Stripe's default of
    24 h, a buyer could pay a day after the order expired, and every such payment is a refund.
    When the clock decides (a short order, or a retry late in its life), the end is rounded up to
    SESSION_END_STEP, so that retries close together send the same params under the same key."""
    earliest = -(-(now + SESSION_EXPIRY[0]) // SESSION_END_STEP) * SESSION_END_STEP
    return int(min(max(order.expires_at.timestamp(), earliest), now + SESSION_EXPIRY[1]))


class StripeProvider(EnvelopeAnswers):
    name = "stripe"
    currencies = None  # any

    def __init__(self, config: Any) -> None:
        cfg = config.stripe
        self.webhook_secret = cfg.webhook_secret
        self.tolerance = config.tolerance_seconds
        self.success_url, self.cancel_url = cfg.success_url, cfg.cancel_url
        # No retries inside a request: the client retries with its Idempotency-Key instead.
        self.client = stripe.StripeClient(
            cfg.secret_key, base_addresses={"api": cfg.api_base}, max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=cfg.timeout))

    def create_payment(self, order: OrderModel) -> PaymentRequest:
        """Create a Checkout Session for the order; the order_no travels in its metadata."""
        try:
            params = self._session_params(order)
            session = self.client.v1.checkout.sessions.create(
                params=params,
                # The same order asks Stripe once, however often the client retries, as long as the
                # session's end stays the same (Stripe refuses one key with other params).
                options={"idempotency_key": f"checkout-{order.order_no}-{params['expires_at']}"})
        except stripe.StripeError as exc:
            log.warning("stripe checkout session failed for %s: %s", order.order_no, exc.__class__.__name__)
            raise ApiError(codes.PAYMENT_PROVIDER_ERROR, data={"order_no": order.order_no}) from None
        return PaymentRequest(self.name, pay_url=session.url, params={"session_id": session.id})

    def _session_params(self, order: OrderModel) -> dict[str, Any]:
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": order.order_no,
            "metadata": {"order_no": order.order_no},
            "payment_intent_data": {"metadata": {"order_no": order.order_no}},
            "line_items": [{"quantity": order.quantity, "price_data": {
                "currency": order.currency.lower(),
                "unit_amount": order.amount // order.quantity,
                "product_data": {"name": order.subject},
            }}],
            "success_url": self.success_url.replace("{order_no}", order.order_no),
            "cancel_url": self.cancel_url.replace("{order_no}", order.order_no),
        }
        params["expires_at"] = session_end(order, time.time())
        return params

    def parse_notification(self, body: bytes, headers: Any) -> Notification | None:
        self._verify(body, headers.get(HEADER))
        event = json.loads(body)  # the stripe package has verified and parsed it already
        if event.get("type") not in PAID_EVENTS:
            return None
        try:
            session = event["data"]["object"]
            order_no = (session.get("metadata") or {}).get("order_no")
            if session.get("payment_status") != "paid" or not order_no:
                return None  # not paid yet, or a session another integration created
            # The PaymentIntent is what a refund needs; a session without one is named by its own id.
            return Notification(str(order_no), str(session.get("payment_intent") or session["id"]),
                                int(session["amount_total"]), str(session["currency"]).upper(), body.decode())
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None

    def _verify(self, body: bytes, header: str | None) -> None:
        if header and not header.isascii():  # hmac.compare_digest raises TypeError on non-ASCII text
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID)
        try:
            stripe.Webhook.construct_event(body, header, self.webhook_secret, tolerance=self.tolerance)
        except stripe.SignatureVerificationError:
            raise ApiError(self._refusal(body, header)) from None
        except (ValueError, AttributeError):  # signed, but not a Stripe event
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None
        # construct_event refuses only a timestamp older than the tolerance; one as far ahead is refused too.
        check_timestamp(_signed_timestamp(header), self.tolerance)

    def _refusal(self, body: bytes, header: str | None) -> Any:
        """Tell a stale but genuine signature (a replay) from a forged one."""
        try:
            stripe.WebhookSignature.verify_header(body, header, self.webhook_secret, tolerance=None)
        except stripe.SignatureVerificationError:
            return codes.PAYMENT_SIGNATURE_INVALID
        return codes.PAYMENT_NOTIFICATION_EXPIRED
