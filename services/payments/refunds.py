"""Refunds: money given back for a stored payment, asked of its provider once per refund.

A refund is on record (requested) before the provider hears of it, under the payment's row lock,
so that two operators refunding at once make one refund and no refund can exceed what was paid
minus what was refunded or is being refunded. The provider is asked after that commit, with the
key refund-<id>: asking again (a timeout, `refunds sweep`) cannot refund twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select, update

from config import settings
from extensions import db
from models import OrderModel, PaymentModel, PaymentOutcome, RefundModel, RefundStatus
from models.base import utcnow
from services import orders, payments
from services.base import commit
from services.payments.base import Outcome, ProviderError, RefundUpdate

log = logging.getLogger("flask_api.payments")
RETRY_AFTER = timedelta(minutes=1)  # a refund still requested this long after its last try is asked again


class RefundRefused(Exception):
    """A refund that cannot be asked for (no such payment, nothing left to refund)."""


def refunded(payment_ids: list[int]) -> dict[int, int]:
    """What was refunded or is being refunded of each payment, in one query (absent: nothing)."""
    rows = db.session.execute(select(RefundModel.payment_id, func.sum(RefundModel.amount)).where(
        RefundModel.payment_id.in_(payment_ids), RefundModel.status != RefundStatus.FAILED)
        .group_by(RefundModel.payment_id))
    return {payment_id: int(total) for payment_id, total in rows}


def refundable(payment: PaymentModel) -> int:
    """What is left to refund: paid, less what was refunded or is being refunded."""
    return payment.amount - refunded([payment.id]).get(payment.id, 0)


def request_refund(payment_id: int, amount: int | None = None, reason: str | None = None) -> RefundModel:
    """Refund a stored payment, in full by default; the refund as it stands after the provider answered."""
    # A fresh transaction: what was refunded is read after the lock, not in a snapshot taken before
    # it (an operator's confirmation prompt may have read the payment minutes ago).
    db.session.rollback()
    payment = db.session.scalar(select(PaymentModel).where(PaymentModel.id == payment_id).with_for_update())
    if payment is None:
        db.session.rollback()
        raise RefundRefused(f"no payment {payment_id}")
    left = refundable(payment)
    if left <= 0:
        db.session.rollback()
        raise RefundRefused(f"payment {payment_id} has nothing left to refund")
    amount = left if amount is None else amount
    if not 0 < amount <= left:
        db.session.rollback()
        raise RefundRefused(f"payment {payment_id} has {left} {payment.currency} left to refund, not {amount}")
    refund = RefundModel(payment_id=payment_id, amount=amount, currency=payment.currency, reason=reason)
    db.session.add(refund)
    commit()  # on record, and the payment's lock released, before the provider is asked
    return _ask_provider(refund.id)


def _ask_provider(refund_id: int) -> RefundModel:
    refund = db.session.get(RefundModel, refund_id)
    payment = db.session.get(PaymentModel, refund.payment_id)
    amount, key = refund.amount, f"refund-{refund_id}"
    db.session.expunge(payment)
    db.session.rollback()  # no transaction open while the provider answers
    provider = payments.enabled(payment.provider)
    try:
        if provider is None:
            raise ProviderError(f"provider {payment.provider} is not enabled", unknown=True)
        result = provider.refund(payment, amount, key)
    except ProviderError as error:
        log.warning("refund not done", extra={"fields": {
            "refund_id": refund_id, "payment_id": payment.id, "error": str(error), "unknown": error.unknown}})
        # Refused: nothing went back, and the amount may be asked again. No answer: still requested.
        status = RefundStatus.REQUESTED if error.unknown else RefundStatus.FAILED
        return _settle(refund_id, status, error=str(error))[0]
    return _settle(refund_id, result.status, provider_refund_id=result.provider_refund_id)[0]


def _settle(refund_id: int, status: str, provider_refund_id: str | None = None,
            error: str | None = None) -> tuple[RefundModel, bool]:
    """Record what the provider said of a refund, under the refund's row lock and only while it is
    still requested: the answer to the request, a webhook and a sweep's retry may each bring it,
    and only the first one counts. Succeeded, it adds to its order's refunded_amount, committed
    with the order's Redis copies renewed around it. Returns (the refund, whether it changed)."""
    db.session.rollback()  # read it as it stands now, not as an earlier read of this transaction saw it
    refund = db.session.scalar(select(RefundModel).where(RefundModel.id == refund_id).with_for_update()
                               .execution_options(populate_existing=True))
    # Settled already; but money the provider says went back counts, even after a refusal an
    # earlier try of the same key was given (the provider decides, and it said so last).
    late_success = refund.status == RefundStatus.FAILED and status == RefundStatus.SUCCEEDED
    if refund.status != RefundStatus.REQUESTED and not late_success:
        db.session.rollback()
        return refund, False
    refund.provider_refund_id = provider_refund_id or refund.provider_refund_id
    refund.error = error[:255] if error else None
    if status == RefundStatus.FAILED:
        refund.status, refund.completed_at = RefundStatus.FAILED.value, utcnow()
    if status != RefundStatus.SUCCEEDED:
        commit()
        return refund, status == RefundStatus.FAILED
    refund.status, refund.completed_at = RefundStatus.SUCCEEDED.value, utcnow()
    payment = db.session.get(PaymentModel, refund.payment_id)
    order = orders.lock_for_payment(payment.order_no)
    if order is None:
        commit()
        return refund, True
    db.session.execute(update(OrderModel).where(OrderModel.id == order.id)
                       .values(refunded_amount=OrderModel.refunded_amount + refund.amount))
    orders.commit_order_write(order.user_id, order)
    return refund, True


def _claim(refund_id: int) -> bool:
    """Take a stale requested refund for this sweep: one that a sweep running beside it took a
    moment ago is no longer stale, so two sweeps never ask about one refund at once."""
    claimed = db.session.execute(update(RefundModel).where(
        RefundModel.id == refund_id, RefundModel.status == RefundStatus.REQUESTED,
        RefundModel.requested_at <= utcnow() - RETRY_AFTER).values(requested_at=utcnow())).rowcount == 1
    commit()
    return claimed


def apply_update(provider: str, notice: RefundUpdate) -> Outcome:
    """A provider's refund notification: a requested refund has succeeded or failed there."""
    refund_id = db.session.scalar(select(RefundModel.id).join(PaymentModel, PaymentModel.id == RefundModel.payment_id)
                                  .where(RefundModel.provider_refund_id == notice.provider_refund_id,
                                         PaymentModel.provider == provider))
    if refund_id is None:  # not ours, or not known yet: the answer to its request is on the way
        db.session.rollback()
        return Outcome("ignored")
    refund, changed = _settle(refund_id, notice.status)
    return Outcome(f"refund_{refund.status}" if changed else "ignored")


def sweep() -> Counter[str]:
    """For cron: ask again about every refund still requested a minute after it was made; with
    payment.auto_refund, refund in full every needs_refund payment that has no refund yet."""
    counts: Counter[str] = Counter()
    stale = db.session.scalars(select(RefundModel.id).where(
        RefundModel.status == RefundStatus.REQUESTED, RefundModel.requested_at <= utcnow() - RETRY_AFTER)).all()
    for refund_id in stale:
        if _claim(refund_id):
            counts[f"retried_{_ask_provider(refund_id).status}"] += 1
    if settings.payment.auto_refund:
        owed = db.session.scalars(select(PaymentModel.id).where(
            PaymentModel.outcome == PaymentOutcome.NEEDS_REFUND,
            ~select(RefundModel.id).where(RefundModel.payment_id == PaymentModel.id).exists())).all()
        for payment_id in owed:
            counts[f"refunded_{request_refund(payment_id, reason='needs_refund (auto)').status}"] += 1
    return counts
