"""The dev provider: notifications signed with payment.dev.secret, the way Stripe signs its webhooks.

Header: X-Dev-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over the bytes "<t>." + body>
Body: {"order_no", "transaction_id", "amount" (minor units), "currency"}

Its books (the dev_ledger table) are what a remote provider would know: `flask pay-order` writes
the payment there before it notifies, so that a lost notification is found by reconciliation; a
close there makes pay-order refuse; refunds are checked against them. They are written on a
connection of their own, never in the service's transaction, as a remote provider's would be.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select, update
from sqlalchemy.dialects import mysql

import codes
from errors import ApiError
from extensions import db
from models import DevLedgerModel, OrderModel, PaymentModel, RefundStatus
from schemas.payment import DevNotificationSchema
from services.payments.base import (
    CheckoutState,
    EnvelopeAnswers,
    Notification,
    PaymentRequest,
    ProviderError,
    RefundResult,
    check_timestamp,
)

HEADER = "X-Dev-Signature"
STAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")  # hex of a SHA-256 HMAC, as sign() writes it
NOTIFY_PATH = "/api/payment/notify/dev"
_schema = DevNotificationSchema()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The X-Dev-Signature value for body; what `flask pay-order` and the tests send."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def notification_body(order_no: str, transaction_id: str, amount: int, currency: str) -> bytes:
    return json.dumps({"order_no": order_no, "transaction_id": transaction_id, "amount": amount,
                       "currency": currency}).encode()


def _parse_header(header: str) -> tuple[int, list[bytes]]:
    """(timestamp, v1 signatures) of a header; several v1 entries allow rotating the secret."""
    items = [part.strip().split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in items if key == "t"]
    signatures = [value for key, value in items if key == "v1"]
    # ASCII and bounded, or junk is a 500: str.isdigit() passes "²" and 4301 digits, which int() refuses,
    # and hmac.compare_digest refuses non-ASCII text.
    if (len(stamps) != 1 or not STAMP.fullmatch(stamps[0]) or not signatures
            or not all(SIGNATURE.fullmatch(signature) for signature in signatures)):
        raise ApiError(codes.PAYMENT_SIGNATURE_INVALID)
    return int(stamps[0]), [signature.encode() for signature in signatures]


class DevProvider(EnvelopeAnswers):
    name = "dev"
    currencies = None  # any

    def __init__(self, config: Any) -> None:
        self.secret = config.dev.secret
        self.tolerance = config.tolerance_seconds

    def create_payment(self, order: OrderModel) -> PaymentRequest:
        """Nothing to call: a developer pays with `flask --app app pay-order ORDER_NO`."""
        return PaymentRequest(self.name, params={"order_no": order.order_no, "amount": order.amount,
                                                 "currency": order.currency, "notify_path": NOTIFY_PATH})

    def parse_notification(self, body: bytes, headers: Any) -> Notification:
        timestamp, signatures = _parse_header(headers.get(HEADER, ""))
        expected = sign(body, self.secret, timestamp).rsplit("v1=", 1)[1].encode()
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID)
        check_timestamp(timestamp, self.tolerance)  # after the signature: the timestamp is signed too
        try:
            text = body.decode()
            data = _schema.load(json.loads(text))
        except (ValueError, ValidationError):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None
        return Notification(data["order_no"], data["transaction_id"], data["amount"], data["currency"].upper(), text)

    def query(self, order: OrderModel, checkouts: list[str]) -> CheckoutState:
        entry = _ledger_entry(order.order_no)
        if entry is None or entry.state == "open":
            return CheckoutState("open")
        if entry.state == "closed":
            return CheckoutState("closed")
        body = notification_body(order.order_no, entry.transaction_id, entry.amount, entry.currency)
        return CheckoutState("paid", Notification(order.order_no, entry.transaction_id, entry.amount, entry.currency,
                                                  body.decode()))

    def close(self, order: OrderModel, checkouts: list[str]) -> None:
        with db.engine.begin() as books:
            _entry_for(books, order.order_no, order.amount, order.currency)
            # A paid checkout stays paid: closing it is no error, and changes nothing.
            books.execute(update(DevLedgerModel).where(DevLedgerModel.order_no == order.order_no,
                                                       DevLedgerModel.state == "open").values(state="closed"))

    def refund(self, payment: PaymentModel, amount: int, key: str) -> RefundResult:
        """Checked against what was paid as the books know it (or the stored payment, for one paid by
        a hand-signed notification they never saw); the same key refunds once."""
        with db.engine.begin() as books:
            entry = _entry_for(books, payment.order_no, payment.amount, payment.currency, state="paid",
                               transaction_id=payment.transaction_id)
            done = json.loads(entry.refunds) if entry.refunds else {}
            if key not in done:
                paid = entry.amount if entry.state == "paid" else payment.amount
                if sum(done.values()) + amount > paid:
                    raise ProviderError(f"refund of {amount} exceeds the {paid - sum(done.values())} left to refund")
                done[key] = amount
                books.execute(update(DevLedgerModel).where(DevLedgerModel.order_no == payment.order_no)
                              .values(refunds=json.dumps(done), refunded=sum(done.values())))
        return RefundResult(f"dev_re_{key}", RefundStatus.SUCCEEDED.value)


def _ledger_entry(order_no: str) -> Any:
    with db.engine.connect() as books:
        return books.execute(select(DevLedgerModel.__table__).where(DevLedgerModel.order_no == order_no)).first()


def _entry_for(books: Any, order_no: str, amount: int, currency: str, state: str = "open",
               transaction_id: str | None = None) -> Any:
    """The order's row in the books, made (as state) if there is none, and locked. One statement
    takes the lock whether the row is new or not: a locking read of a missing row first would hold
    a gap lock, and two such closes inserting side by side deadlock (the order race test saw it)."""
    books.execute(mysql.insert(DevLedgerModel).values(
        order_no=order_no, state=state, transaction_id=transaction_id, amount=amount, currency=currency, refunded=0)
        .on_duplicate_key_update(order_no=order_no))
    return books.execute(select(DevLedgerModel.__table__).where(DevLedgerModel.order_no == order_no)
                         .with_for_update()).one()


def record_payment(order: OrderModel, transaction_id: str | None) -> str:
    """The buyer pays at the dev provider: its books say paid (with transaction_id, or a new one),
    unless the checkout was closed. A paid one answers its transaction id again, to notify again."""
    with db.engine.begin() as books:
        entry = _entry_for(books, order.order_no, order.amount, order.currency)
        if entry.state == "closed":
            raise ProviderError("the checkout of this order is closed: it cannot be paid")
        if entry.state == "paid":
            if transaction_id not in (None, entry.transaction_id):
                raise ProviderError(f"this order was paid already, by {entry.transaction_id}")
            return entry.transaction_id
        transaction_id = transaction_id or f"dev_{secrets.token_hex(12)}"
        books.execute(update(DevLedgerModel).where(DevLedgerModel.order_no == order.order_no).values(
            state="paid", transaction_id=transaction_id, amount=order.amount, currency=order.currency))
    return transaction_id


def send_payment(base_url: str, secret: str, order: OrderModel, transaction_id: str,
                 timeout: float = 10) -> tuple[int, str]:
    """POST a signed notification paying order in full to a running service; (HTTP status, body)."""
    body = notification_body(order.order_no, transaction_id, order.amount, order.currency)
    req = urllib.request.Request(base_url.rstrip("/") + NOTIFY_PATH, data=body, method="POST", headers={
        "Content-Type": "application/json", HEADER: sign(body, secret)})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()
