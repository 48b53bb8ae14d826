"""The one way every provider's notification is handled: verify, store, apply, in one transaction."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import codes
import metrics
from errors import ApiError
from extensions import db
from models import REFUSED_OUTCOMES, PaymentModel, PaymentOutcome
from services import orders
from services.base import commit
from services.payments import refunds
from services.payments.base import Notification, Outcome, Provider, RefundUpdate

log = logging.getLogger("flask_api.payments")


def handle_notification(provider: Provider, body: bytes, headers: Any) -> Outcome:
    """Verify, store and apply one notification; raises ApiError for the refused ones."""
    notification = provider.parse_notification(body, headers)  # nothing is stored before this passes
    if notification is None:
        return Outcome("ignored")
    if isinstance(notification, RefundUpdate):
        return refunds.apply_update(provider.name, notification)
    outcome = record_payment(provider.name, notification)
    log.info("payment notification %s %s for %s: %s", provider.name, notification.transaction_id,
             notification.order_no, outcome.outcome)
    metrics.notification(provider.name, outcome.outcome)
    if outcome.outcome in REFUSED_OUTCOMES:
        raise ApiError(REFUSED_OUTCOMES[PaymentOutcome(outcome.outcome)], data={"order_no": notification.order_no})
    return outcome


def record_payment(provider: str, notification: Notification) -> Outcome:
    """In one transaction: lock the order, store the payment, apply it. A retry finds its row and stops.
    A notification and a reconciliation (reconcile.py) both come here, so either may come first."""
    order = orders.lock_for_payment(notification.order_no)  # later notifications for the order wait here
    stored_for = _stored_for(provider, notification.transaction_id)
    if stored_for is None:
        outcome = orders.apply_payment(order, provider, notification) if order else PaymentOutcome.UNKNOWN_ORDER
        db.session.add(PaymentModel(provider=provider, transaction_id=notification.transaction_id,
                                    order_no=notification.order_no, amount=notification.amount,
                                    currency=notification.currency, outcome=outcome.value,
                                    raw_payload=notification.raw))
        try:
            if outcome == PaymentOutcome.PAID:  # what a status or a list shows changes
                orders.commit_order_write(order.user_id, order)
            else:
                commit()
            metrics.payment_applied(outcome)
            return Outcome(outcome.value, notification.order_no)
        except IntegrityError:  # the same transaction id was stored by a parallel delivery
            db.session.rollback()
            stored_for = _stored_for(provider, notification.transaction_id)
    db.session.rollback()
    if stored_for == notification.order_no:
        return Outcome("duplicate", notification.order_no)
    # One provider transaction cannot pay two orders: a provider fault or a forged pair of signed
    # messages. It cannot be stored beside the first (the id is unique), so it is refused, and the
    # provider keeps retrying and shows it failing, while the log keeps the whole message.
    log.error("payment notification conflicts with a stored payment", extra={"fields": {
        "provider": provider, "transaction_id": notification.transaction_id, "order_no": notification.order_no,
        "stored_order_no": stored_for, "raw_payload": notification.raw}})
    raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID, data={"order_no": notification.order_no})


def _stored_for(provider: str, transaction_id: str) -> str | None:
    """The order_no a stored payment with this transaction id was for, or None."""
    return db.session.scalar(select(PaymentModel.order_no).where(PaymentModel.provider == provider,
                                                                 PaymentModel.transaction_id == transaction_id))
