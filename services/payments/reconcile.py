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
from errors import ApiError
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
    closed, failed = orders.close_checkouts(orders.owed_closes(utcnow() - since))  # owed since a failed close
    counts["closed"] += closed
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
    checkouts = orders.checkouts_of(order)
    db.session.expunge(order)
    db.session.rollback()  # no transaction open while the provider answers
    try:
        if provider is None:
            raise ProviderError(f"provider {order.payment_provider} is not enabled")
        state = provider.query(order, checkouts)
    except ProviderError as error:
        log.warning("reconciliation could not ask", extra={"fields": {
            "order_no": order.order_no, "provider": order.payment_provider, "error": str(error)}})
        return UNREACHABLE
    if state.status == "paid":
        try:
            return record_payment(provider.name, state.payment).outcome
        except ApiError:  # its transaction id paid another order: logged there, for a person to look at
            return "conflict"
    return "open" if order.status == OrderStatus.PENDING else "unpaid"
