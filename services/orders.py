"""Order rules: creation (idempotent), ownership, the state machine's transitions, expiry."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError

import codes
import metrics
from config import settings
from errors import ApiError
from extensions import db
from models import CheckoutModel, OrderModel, OrderStatus, PaymentOutcome
from models.base import utcnow
from schemas.common import Dumped
from schemas.order import DEFAULT_PAGE_SIZE, OrderPageSchema, OrderSchema, PaymentRequestSchema
from services import catalog, payments
from services.base import commit, execute_alone, paginate
from services.payments.base import Notification, PaymentRequest, ProviderError
from store import order_cache

ORDER_NO_DIGITS = 12  # after the date: 10^12 numbers a day, so a guess almost never names an order
INSERT_ATTEMPTS = 3
_INSERT_ORDER = insert(OrderModel.__table__)
_order_schema = OrderSchema()
_page_schema = OrderPageSchema()
_payment_schema = PaymentRequestSchema()
_SHOWN_FIELDS = frozenset(_order_schema.fields)
CLOSED_STATUSES = (OrderStatus.CANCELLED.value, OrderStatus.EXPIRED.value)  # nothing may pay them
# How far back the sweep retries a failed close: no checkout outlives its order by more
# (a Stripe Checkout Session lasts 24 h at most; Alipay's ends with the order).
CLOSE_WINDOW = timedelta(hours=25)
CACHED_PAGES = 3  # of the default size: what clients read again and again (each a Redis hash field)
log = logging.getLogger("flask_api.orders")


def new_order_no(now: datetime) -> str:
    return now.strftime("%Y%m%d") + f"{secrets.randbelow(10**ORDER_NO_DIGITS):0{ORDER_NO_DIGITS}d}"


def is_order_no(text: str) -> bool:
    """An order_no is its digits exactly. The column's collation ignores trailing spaces, so
    a variant would find the row while every cache key made from it differed."""
    return len(text) == 8 + ORDER_NO_DIGITS and text.isascii() and text.isdigit()


def _fingerprint(product_id: str, quantity: int, provider: str) -> str:
    canonical = json.dumps({"product_id": product_id, "quantity": quantity, "provider": provider}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_order(user_id: int, data: dict[str, Any], idempotency_key: str | None) -> tuple[Dumped, bool]:
    """A new PENDING order and its payment request, as OrderCreatedSchema shows them, and whether it
    was created now: a repeated Idempotency-Key answers the first order (False).

    The caller's token check has dropped the user's list pages (the view's login_required(drops=
    pages_key)); new_order_committed drops them again after the commit."""
    provider = data["provider"] or settings.payment.default
    fingerprint = _fingerprint(data["product_id"], data["quantity"], provider)
    order, created = _insert(user_id, data["product_id"], data["quantity"], provider, idempotency_key, fingerprint)
    if idempotency_key and order.request_fingerprint != fingerprint:
        raise ApiError(codes.ORDER_IDEMPOTENCY_CONFLICT, data={"order_no": order.order_no})
    if not created:
        _expire_if_due(order)
    payable = order.status == OrderStatus.PENDING
    # The order is committed by now: no row lock is held while a slow provider answers.
    payment = payments.get_provider(order.payment_provider).create_payment(order) if payable else None
    if payment is not None and payment.checkout:
        _remember_checkout(order.order_no, payment)
    return Dumped({**_as_shown(order), "payment": _payment_schema.dump(payment) if payment else None}), created


def pages_key(user_id: int, view_args: dict[str, Any]) -> str:
    """For login_required(drops=): the user's cached list pages, which a new order makes stale."""
    return order_cache.PAGES(user_id)


def _remember_checkout(order_no: str, payment: PaymentRequest) -> None:
    """Keep the provider's reference (a retry that got the same one changes nothing), so that the
    checkout can be asked about and closed later."""
    db.session.execute(mysql.insert(CheckoutModel).values(order_no=order_no, provider=payment.provider,
                                                          reference=payment.checkout)
                       .prefix_with("IGNORE"))
    commit()


def checkouts_of(order: OrderModel) -> list[str]:
    return list(db.session.scalars(select(CheckoutModel.reference).where(
        CheckoutModel.order_no == order.order_no, CheckoutModel.provider == order.payment_provider)
        .order_by(CheckoutModel.id)))


def close_checkouts(order_ids: Sequence[int]) -> tuple[int, int]:
    """After the commit that ended them (a cancel, the sweep): make the orders impossible to pay at
    their providers, one call each, with no transaction open while a provider answers and each
    close committed as it is done. A close that fails stays owed (checkout_closed_at NULL), is
    logged, and is retried by the next sweep; a payment that still arrives is needs_refund.
    Returns (closed, failed)."""
    owed = db.session.scalars(select(OrderModel).where(
        OrderModel.id.in_(list(order_ids)), OrderModel.status.in_(CLOSED_STATUSES),
        OrderModel.checkout_closed_at.is_(None))).all()
    calls = [(order, checkouts_of(order)) for order in owed]
    db.session.expunge_all()
    db.session.rollback()
    closed = failed = 0
    for order, checkouts in calls:
        provider = payments.enabled(order.payment_provider)
        try:
            if provider is None:
                raise ProviderError(f"provider {order.payment_provider} is not enabled")
            provider.close(order, checkouts)
        except ProviderError as error:
            failed += 1
            log.warning("checkout not closed", extra={"fields": {
                "order_no": order.order_no, "provider": order.payment_provider, "error": str(error)}})
            continue
        db.session.execute(update(OrderModel).where(OrderModel.id == order.id).values(checkout_closed_at=utcnow()))
        commit()
        closed += 1
    return closed, failed


def owed_closes(since: datetime) -> list[int]:
    """Cancelled or expired orders due after since whose checkout is not known closed (through
    ix_orders_status_expires: an order is due after it was made, so none older is missed)."""
    return list(db.session.scalars(select(OrderModel.id).where(
        OrderModel.status.in_(CLOSED_STATUSES), OrderModel.expires_at >= since,
        OrderModel.checkout_closed_at.is_(None))))


def _by_idempotency_key(user_id: int, key: str) -> OrderModel | None:
    return db.session.scalar(select(OrderModel).where(OrderModel.user_id == user_id,
                                                      OrderModel.idempotency_key == key))


def _insert(user_id: int, product_id: str, quantity: int, provider: str, key: str | None,
            fingerprint: str) -> tuple[OrderModel, bool]:
    """Insert and commit; (order, True), or (the first order, False) when the key was used before.

    The key's order is looked up only when the insert meets it: most keys are new, and a replay pays
    the failed insert instead of every request paying a lookup."""
    product = catalog.find_product(product_id)
    refusal = _refusal(product, provider)
    if refusal is not None:
        earlier = _by_idempotency_key(user_id, key) if key else None
        if earlier is None:
            raise refusal
        return earlier, False  # a replay answers its order, even of a product retired since
    for attempt in range(INSERT_ATTEMPTS):
        now = utcnow()
        row = {"order_no": new_order_no(now), "user_id": user_id, "product_id": product_id, "quantity": quantity,
               "amount": product.price * quantity, "currency": product.currency,
               "subject": catalog.localized_name(product), "status": OrderStatus.PENDING.value,
               "payment_provider": provider, "idempotency_key": key,
               "request_fingerprint": fingerprint if key else None, "created_at": now,
               "expires_at": now + timedelta(seconds=settings.order.expire_seconds), "refunded_amount": 0}
        try:
            # A plain INSERT of the table's row, committed on its own: the ORM's unit of work and
            # the session would cost more than the rest of the request, for one row whose every
            # value is known here.
            order_id = execute_alone(_INSERT_ORDER, row).lastrowid
        except IntegrityError:
            # Either the key was used before (a replay, or a parallel request that committed
            # first: answer its order), or the random order_no was taken (draw again). The
            # rollback ends any transaction an earlier read of this request began, whose view of
            # the database would predate that parallel commit.
            db.session.rollback()
            earlier = _by_idempotency_key(user_id, key) if key else None
            if earlier is not None:
                return earlier, False
            if attempt == INSERT_ATTEMPTS - 1:
                raise
            continue
        new_order_committed(user_id)
        metrics.order("created")
        # Not in the session: what the answer and the provider read, without a query.
        return OrderModel(id=order_id, **row), True
    raise AssertionError("unreachable")


def _refusal(product: Any, provider: str) -> ApiError | None:
    """Why an order of product from provider cannot be made, or None."""
    if product is None:
        return ApiError(codes.ORDER_PRODUCT_NOT_FOUND)
    currencies = payments.get_provider(provider).currencies
    if currencies is not None and product.currency not in currencies:  # Alipay would charge yuan for dollars
        return ApiError(codes.ORDER_CURRENCY_NOT_SUPPORTED, data={"currency": product.currency, "provider": provider})
    return None


def _owned(user_id: int, order_no: str) -> OrderModel:
    """The user's order; another user's order answers exactly like a missing one."""
    if not is_order_no(order_no):
        raise ApiError(codes.ORDER_NOT_FOUND)
    order = db.session.scalar(select(OrderModel).where(OrderModel.order_no == order_no,
                                                       OrderModel.user_id == user_id))
    if order is None:
        raise ApiError(codes.ORDER_NOT_FOUND)
    return order


def _expire_if_due(order: OrderModel) -> None:
    """Expire on read: a past-due PENDING order is EXPIRED now, whether the sweep has run or not."""
    if order.is_due(utcnow()):
        # The commit expires the instance: the next read shows who won. Its checkout is closed by the
        # next sweep: a read never waits for a provider.
        _expire_due(OrderModel.id == order.id)


def _expire_due(*where: Any, limit: int | None = None) -> tuple[int, int]:
    """The one expiry: PENDING orders past their deadline (among those where selects, at most
    limit) become EXPIRED, in one committed transaction. Returns (expired, picked); fewer expire
    than were picked when a payment or a cancel got there first.

    The rows are picked with a plain read and then updated through the primary key, the lock
    order of every single-order path: an UPDATE driven by ix_orders_status_expires would lock
    index entry then row, the reverse order, and deadlock with a payment holding its order's row.
    """
    now = utcnow()
    due = db.session.scalars(select(OrderModel.id).where(
        OrderModel.status == OrderStatus.PENDING, OrderModel.expires_at <= now, *where).limit(limit)).all()
    expired = 0
    if due:
        expired = db.session.execute(OrderModel.transition_rows(
            due, OrderStatus.EXPIRED, OrderModel.expires_at <= now)).rowcount
    commit()
    metrics.order("expired", expired)
    return expired, len(due)


def get_order(user_id: int, order_no: str) -> OrderModel:
    """One of the user's orders, never a past-due PENDING one."""
    order = _owned(user_id, order_no)
    _expire_if_due(order)
    return order


def snapshot_key(user_id: int, view_args: dict[str, Any]) -> str:
    """For login_required(prefetch=): the status view's snapshot, read with the token check."""
    return order_cache.SNAPSHOT(user_id, view_args["order_no"])


def order_status(user_id: int, order_no: str, cached: str) -> Dumped:
    """get_order, answered from the order's snapshot when the caller fetched one (cached, '' if none).

    The snapshot in Redis is the order as the API shows it. Whoever moves an order before its
    deadline (a cancel, a payment) deletes the snapshot before the commit and writes the new one
    after it (begin_order_write, end_order_write); a PENDING snapshot past its deadline is not
    used, since the order is EXPIRED by then.
    """
    if cached:
        snapshot = json.loads(cached)
        current = snapshot.keys() >= _SHOWN_FIELDS  # not one a release with fewer fields stored
        if current and (snapshot["status"] != OrderStatus.PENDING
                        or datetime.fromisoformat(snapshot["expires_at"]) > utcnow()):
            return Dumped(snapshot)
    order = get_order(user_id, order_no)
    shown = _as_shown(order)
    order_cache.save_snapshot(user_id, order.order_no, shown, final=order.status != OrderStatus.PENDING)
    return Dumped(shown)


def _as_shown(order: OrderModel) -> dict[str, Any]:
    """The order as the API shows it, which is what its snapshot holds."""
    return _order_schema.dump(order)


def new_order_committed(user_id: int) -> None:
    """After a new order's commit: drop the user's list pages, taking any that a reader stored
    since the token check dropped them.

    A new order has no snapshot and no reader holds it yet, so no hold is needed as for a change
    (commit_order_write). The commit stands whatever Redis says then, so that failure is logged,
    not answered: at worst a page that a reader stored between the check and the commit lacks the
    new order until order_cache.PAGES_TTL.
    """
    try:
        order_cache.drop_pages(user_id)
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
        _log_stale(error, user_id)


def commit_order_write(user_id: int, order: OrderModel) -> dict[str, Any]:
    """Commit a change to one of the user's orders (a cancel, a payment), with the Redis copies kept
    right around it; returns that order as now shown.

    Before the commit, begin_order_write drops the user's list pages and the order's snapshot and
    holds readers from storing pages: a Redis that cannot hear it stops the write uncommitted.
    After it, end_order_write drops the pages again, ends the hold, and writes the order's new
    snapshot (made before the commit, which expires the order) over any a reader stored meanwhile.
    The commit stands whatever Redis says then, so that failure is logged, not answered: at worst
    a status snapshot that a reader stored between begin and commit shows the old state until
    order_cache.SNAPSHOT_TTL (pages stay held back until order_cache.PAGES_TTL).
    """
    db.session.refresh(order)  # the transition's UPDATE went around the instance
    order_no, shown = order.order_no, _as_shown(order)
    order_cache.begin_write(user_id, order_no)
    try:
        commit()
    except Exception:
        _end_order_write(user_id)  # nothing changed: only the hold ends
        raise
    _end_order_write(user_id, order_no, shown)
    return shown


def _end_order_write(user_id: int, order_no: str | None = None, shown: dict[str, Any] | None = None) -> None:
    try:
        order_cache.end_write(user_id, order_no, shown)
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
        _log_stale(error, user_id, order_no)


def _log_stale(error: Exception, user_id: int, order_no: str | None = None) -> None:
    log.warning("order caches not renewed after a write", extra={"fields": {
        "user_id": user_id, "order_no": order_no, "error": error.__class__.__name__}})


def list_orders(user_id: int, page: int, page_size: int, status: str | None) -> dict[str, Any] | Dumped:
    """A page of the user's orders, newest first, optionally of one status.

    The first CACHED_PAGES pages of the default size are kept in Redis, each until an order of
    the user changes (begin_order_write drops them), the earliest PENDING deadline among the
    user's orders passes, or order_cache.PAGES_TTL ends, whichever comes first.
    """
    cacheable = page <= CACHED_PAGES and page_size == DEFAULT_PAGE_SIZE
    if cacheable:
        field = f"{page}:{page_size}:{status or ''}"
        cached, version = order_cache.read_page(user_id, field)
        if cached:
            entry = json.loads(cached)
            if entry["until"] is None or entry["until"] > time.time():
                return Dumped(entry["page"])
        # What is stored under version must be read after it: end any transaction an earlier read
        # of this request began (the user's row, when its snapshot had left Redis), whose view of
        # the database may predate a write that has ended since.
        db.session.rollback()
    total, due, deadline = _count_due_and_deadline(user_id, status)
    if due:  # rare: expire them first, so that no past-due order is listed or counted as PENDING
        _expire_due(OrderModel.user_id == user_id)  # their checkouts: closed by the next sweep
        total, _, deadline = _count_due_and_deadline(user_id, status)
    filters = [OrderModel.user_id == user_id] + ([OrderModel.status == status] if status else [])
    result = paginate(select(OrderModel).where(*filters), page, page_size,
                              OrderModel.created_at.desc(), OrderModel.id.desc(), total=total)
    if not cacheable:
        return result
    dumped = _page_schema.dump(result)
    order_cache.save_page(user_id, field, version, {
        "until": deadline.timestamp() if deadline else None, "page": dumped})
    return Dumped(dumped)


def _count_due_and_deadline(user_id: int, status: str | None) -> tuple[int, int, datetime | None]:
    """In one query over the user's orders: how many have status (all, if None); how many are
    PENDING past their deadline; and the earliest deadline of a PENDING one."""
    pending = OrderModel.status == OrderStatus.PENDING
    matching = func.count() if status is None else func.sum(case((OrderModel.status == status, 1), else_=0))
    due = func.sum(case((and_(pending, OrderModel.expires_at <= utcnow()), 1), else_=0))
    total, due, deadline = db.session.execute(select(
        func.coalesce(matching, 0), func.coalesce(due, 0), func.min(case((pending, OrderModel.expires_at))))
        .where(OrderModel.user_id == user_id)).one()
    return total, due, deadline


@metrics.counts_order("cancelled")
def cancel_order(user_id: int, order_no: str) -> Dumped:
    """PENDING -> CANCELLED, or 409 when a payment, an expiry or another cancel got there first."""
    order = get_order(user_id, order_no)
    now = utcnow()
    result = db.session.execute(OrderModel.transition_rows(
        [order.id], OrderStatus.CANCELLED, OrderModel.expires_at > now, cancelled_at=now))
    if result.rowcount != 1:
        db.session.rollback()
        raise ApiError(codes.ORDER_INVALID_TRANSITION, data={"status": get_order(user_id, order_no).status})
    shown = commit_order_write(user_id, order)
    close_checkouts([order.id])
    return Dumped(shown)


def lock_for_payment(order_no: str) -> OrderModel | None:
    """The order's latest row, locked until the caller's commit (SELECT ... FOR UPDATE)."""
    if not is_order_no(order_no):
        return None
    return db.session.scalar(select(OrderModel).where(OrderModel.order_no == order_no)
                             .with_for_update().execution_options(populate_existing=True))


def apply_payment(order: OrderModel, provider: str, notification: Notification) -> PaymentOutcome:
    """Decide what a verified payment means for its locked order, and make the transition; no commit."""
    if (notification.amount, notification.currency) != (order.amount, order.currency):
        return PaymentOutcome.AMOUNT_MISMATCH
    now = utcnow()
    if order.is_due(now):  # money after the deadline: the order expires, the money goes back
        db.session.execute(OrderModel.transition_rows([order.id], OrderStatus.EXPIRED))
        return PaymentOutcome.NEEDS_REFUND
    result = db.session.execute(OrderModel.transition_rows(
        [order.id], OrderStatus.PAID, paid_at=now, payment_provider=provider,
        transaction_id=notification.transaction_id))
    # Not PENDING (paid by another transaction, cancelled, expired): keep the money on record for a refund.
    return PaymentOutcome.PAID if result.rowcount == 1 else PaymentOutcome.NEEDS_REFUND


def expire_due_orders(batch_size: int | None = None) -> int:
    """Expire every past-due PENDING order, one committed batch at a time; returns how many."""
    batch_size = batch_size or settings.order.sweep_batch_size
    total = 0
    while True:  # short transactions: payments and cancels wait at most one batch
        expired, picked = _expire_due(limit=batch_size)
        total += expired
        if picked < batch_size:
            # The checkouts of what this run expired, and of what an earlier close failed to close.
            close_checkouts(owed_closes(utcnow() - CLOSE_WINDOW))
            return total


def find_order(order_no: str) -> OrderModel | None:
    """Any user's order, for operator commands."""
    if not is_order_no(order_no):
        return None
    return db.session.scalar(select(OrderModel).where(OrderModel.order_no == order_no))
