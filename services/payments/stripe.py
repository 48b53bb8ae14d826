"""Stripe: Checkout Sessions out, signed webhooks in, both through the official `stripe` package.

Reconciliation retrieves the order's sessions, a close expires the open ones, a refund is made on
the PaymentIntent; refund events come back as RefundUpdate."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe

import codes
from errors import ApiError
from models import OrderModel, PaymentModel, RefundStatus
from services.payments.base import (
    CheckoutState,
    EnvelopeAnswers,
    Notification,
    PaymentRequest,
    ProviderError,
    RefundResult,
    RefundUpdate,
    check_timestamp,
)

log = logging.getLogger("flask_api.payments")

HEADER = "Stripe-Signature"
# checkout.session.completed pays at once for cards; delayed methods (bank debits)
# complete "unpaid" and pay later with async_payment_succeeded.
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# Stripe accepts a session expiry between 30 minutes and 24 hours ahead (with a minute's margin).
SESSION_EXPIRY = (30 * 60 + 60, 24 * 3600 - 60)
SESSION_END_STEP = 300  # seconds
# Events whose data.object is a Refund (charge.refund.updated is the older name of refund.updated).
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
REFUND_STATUSES = {"succeeded": RefundStatus.SUCCEEDED, "pending": RefundStatus.REQUESTED,
                   "requires_action": RefundStatus.REQUESTED, "failed": RefundStatus.FAILED,
                   "canceled": RefundStatus.FAILED}
REFUND_KEY = "refund_key"  # the metadata field that names a refund by our key


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
        return PaymentRequest(self.name, pay_url=session.url, params={"session_id": session.id}, checkout=session.id)

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

    def parse_notification(self, body: bytes, headers: Any) -> Notification | RefundUpdate | None:
        self._verify(body, headers.get(HEADER))
        event = json.loads(body)  # the stripe package has verified and parsed it already
        try:
            if event.get("type") in REFUND_EVENTS:
                return _refund_update(event["data"]["object"])
            if event.get("type") == "charge.refunded":
                # A Charge: it carries its refunds, newest first, only in API versions before 2022-11-15.
                refunds = (event["data"]["object"].get("refunds") or {}).get("data") or []
                return _refund_update(refunds[0]) if refunds else None
            if event.get("type") not in PAID_EVENTS:
                return None
            session = event["data"]["object"]
            order_no = (session.get("metadata") or {}).get("order_no")
            if session.get("payment_status") != "paid" or not order_no:
                return None  # not paid yet, or a session another integration created
            return _session_payment(str(order_no), session, body.decode())
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None

    def query(self, order: OrderModel, checkouts: list[str]) -> CheckoutState:
        """Paid if any of the order's sessions is; open if any can still be; closed otherwise (and
        with no session at all: nothing was made at Stripe that could be paid)."""
        sessions = [self._session(checkout) for checkout in checkouts]
        for session in sessions:
            if session.get("payment_status") == "paid":
                try:
                    return CheckoutState("paid", _session_payment(order.order_no, session, json.dumps(session)))
                except (ApiError, KeyError, TypeError, ValueError):
                    raise ProviderError(f"stripe session {session.get('id')} is paid but unreadable",
                                        unknown=True) from None
        # A session completed unpaid waits for a delayed method (a bank debit): it may still pay.
        if any(session.get("status") in ("open", "complete") for session in sessions):
            return CheckoutState("open")
        return CheckoutState("closed")

    def close(self, order: OrderModel, checkouts: list[str]) -> None:
        """Expire every session still open; one that completed, expired or never existed is done."""
        for checkout in checkouts:
            if self._session(checkout, missing_ok=True).get("status") != "open":
                continue
            try:
                self.client.v1.checkout.sessions.expire(checkout)
            except stripe.InvalidRequestError as refused:
                # Stripe refuses to expire a session that is no longer open: it ended meanwhile.
                if self._session(checkout, missing_ok=True).get("status") == "open":
                    raise _provider_error(refused) from None
            except stripe.StripeError as error:
                raise _provider_error(error) from None

    def refund(self, payment: PaymentModel, amount: int, key: str) -> RefundResult:
        """Refund on the PaymentIntent, named by key twice: in its metadata, looked up first, because
        Stripe answers a repeated Idempotency-Key with the first answer (a "pending" long after it
        succeeded) and forgets the key after 24 hours (a second refund); and as the Idempotency-Key,
        for a retry racing the first request."""
        try:
            made = self.client.v1.refunds.list(params={"payment_intent": payment.transaction_id, "limit": 100})
            refunds = [refund.to_dict() for refund in made.data]
            refund = next((found for found in refunds if (found.get("metadata") or {}).get(REFUND_KEY) == key), None)
            if refund is None:
                refund = self.client.v1.refunds.create(
                    params={"payment_intent": payment.transaction_id, "amount": amount,
                            "metadata": {REFUND_KEY: key}},
                    options={"idempotency_key": key}).to_dict()
        except stripe.StripeError as error:
            raise _provider_error(error) from None
        # A status Stripe may add later is not a failure: the refund waits for its event, or the next ask.
        status = REFUND_STATUSES.get(refund.get("status"), RefundStatus.REQUESTED)
        if status == RefundStatus.FAILED:
            reason = refund.get("failure_reason") or "no reason given"
            raise ProviderError(f"stripe refund {refund.get('id')} {refund.get('status')}: {reason}")
        return RefundResult(str(refund["id"]), status.value)

    def _session(self, checkout: str, missing_ok: bool = False) -> dict[str, Any]:
        """The session as a dict; {} for one Stripe does not know, when that is as good as closed."""
        try:
            return self.client.v1.checkout.sessions.retrieve(checkout).to_dict(for_json=True)
        except stripe.InvalidRequestError as error:
            if missing_ok and error.http_status == 404:
                return {}
            raise _provider_error(error) from None
        except stripe.StripeError as error:
            raise _provider_error(error) from None

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


def _session_payment(order_no: str, session: dict[str, Any], raw: str) -> Notification:
    """The payment a paid session made, as its webhook and a query both report it. The
    PaymentIntent is what a refund needs; a session without one is named by its own id."""
    return Notification(order_no, str(session.get("payment_intent") or session["id"]),
                        int(session["amount_total"]), str(session["currency"]).upper(), raw)


def _refund_update(refund: dict[str, Any]) -> RefundUpdate | None:
    status = REFUND_STATUSES.get(refund.get("status"))
    if not refund.get("id") or status is None:
        return None  # a status Stripe may add later: nothing to settle yet
    return RefundUpdate(str(refund["id"]), status.value)


def _provider_error(error: stripe.StripeError) -> ProviderError:
    """Refused (a 4xx: nothing happened) or unknown (no answer, a 5xx, a 409 or 429, or an
    Idempotency-Key already used: the call may have taken effect, or may when asked again)."""
    status = error.http_status
    if isinstance(error, stripe.APIConnectionError):
        return ProviderError("stripe did not answer (timeout or connection lost)", unknown=True)
    unknown = (status is None or status >= 500 or status in (409, 429)
               or isinstance(error, (stripe.IdempotencyError, stripe.RateLimitError)))
    message = (error.user_message or error.__class__.__name__).strip()
    return ProviderError(f"stripe {status}: {message}"[:255], unknown=unknown)
