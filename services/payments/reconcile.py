"""Reconciliation: ask the providers about orders whose payment notification may have been lost.

What a provider answers goes through notify.record_payment, the path of a notification: a
webhook that comes after a reconciliation is a duplicate, and a reconciliation after a webhook
changes nothing. An order that is over but still payable at its provider is closed there.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from config import settings
from extensions import db
from models import OrderModel, OrderStatus, PaymentModel
from models.base import utcnow
from services import orders, payments
from services.payments.base import ProviderError
from services.payments.notify import record_payment

log = logging.getLogger("flask_api.payments")
UNREACHABLE = "unreachable"  # the outcome of an order whose provider could not be asked


def reconcile(since: timedelta) -> Counter[str]:
    """Ask about every order PENDING for longer than payment.reconcile_after_seconds and every
    order that ended (expired, cancelled) within since without a payment on record. Returns the
    count of each outcome: paid, needs_refund, duplicate, amount_mismatch (as notifications have),
    open (PENDING, not paid yet), unpaid (over, and nothing paid), closed (checkouts of ended orders
    closed at their provider now, owed since a failed close), unreachable (a provider not asked)."""
    counts: Counter[str] = Counter()
    for order in _candidates(utcnow(), since):
        counts[_reconcile_one(order)] += 1
    owed = orders.owed_closes(utcnow() - since)  # the closes that failed before, and any left open
    failed = orders.close_checkouts(owed)
    counts["closed"] += len(owed) - failed
    counts[UNREACHABLE] += failed
    return +counts  # without zero counts


def _candidates(now: datetime, since: timedelta) -> list[OrderModel]:
    paid = select(PaymentModel.id).where(PaymentModel.order_no == OrderModel.order_no).exists()
    ended_recently = or_(
        (OrderModel.status == OrderStatus.EXPIRED) & (OrderModel.expires_at >= now - since),
        (OrderModel.status == OrderStatus.CANCELLED) & (OrderModel.cancelled_at >= now - since))
    pending = ((OrderModel.status == OrderStatus.PENDING)
               & (OrderModel.created_at <= now - timedelta(seconds=settings.payment.reconcile_after_seconds)))
    return list(db.session.scalars(select(OrderModel).where(or_(pending, ended_recently), ~paid)
                                   .order_by(OrderModel.id)))


def _reconcile_one(order: OrderModel) -> str:
    provider = payments.enabled(order.payment_provider)
    try:
        if provider is None:
            raise ProviderError(f"provider {order.payment_provider} is not enabled")
        state = provider.query(order, orders.checkouts_of(order))
    except ProviderError as error:
        log.warning("reconciliation could not ask", extra={"fields": {
            "order_no": order.order_no, "provider": order.payment_provider, "error": str(error)}})
        return UNREACHABLE
    db.session.rollback()  # no transaction left open while the next order's provider answers
    if state.status == "paid":
        return record_payment(provider.name, state.payment).outcome
    return "open" if order.status == OrderStatus.PENDING else "unpaid"
