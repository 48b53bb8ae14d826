"""Every payment notification that passed its provider's signature check."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

import codes
from extensions import db
from models.base import BINARY_COLLATION, UTCDateTime, utcnow


class PaymentOutcome(StrEnum):
    PAID = "paid"  # turned its order from PENDING into PAID
    AMOUNT_MISMATCH = "amount_mismatch"  # amount or currency differ from the order's; order untouched
    NEEDS_REFUND = "needs_refund"  # money arrived for an order that was no longer payable
    UNKNOWN_ORDER = "unknown_order"  # names an order_no this service does not know


# Refused after being stored, with these codes: the provider is told, and its retry is a duplicate.
REFUSED_OUTCOMES = {PaymentOutcome.AMOUNT_MISMATCH: codes.PAYMENT_AMOUNT_MISMATCH,
                    PaymentOutcome.UNKNOWN_ORDER: codes.ORDER_NOT_FOUND}


class PaymentModel(db.Model):
    __tablename__ = "payments"
    # A provider's retry of a notification carries the same transaction id: this key makes it a no-op.
    __table_args__ = (UniqueConstraint("provider", "transaction_id", name="uq_payments_provider_transaction"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[str] = mapped_column(String(128, collation=BINARY_COLLATION))
    order_no: Mapped[str] = mapped_column(String(64, collation=BINARY_COLLATION), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units, as the provider reported them
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(16))
    raw_payload: Mapped[str] = mapped_column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # asked of the provider, answer not known yet: counts as refunded until it fails
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the provider refused; nothing went back, and the amount can be asked again


class RefundModel(db.Model):
    """Money given back for a stored payment, asked of its provider with the key refund-<id>."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    provider_refund_id: Mapped[str | None] = mapped_column(String(128, collation=BINARY_COLLATION), nullable=True,
                                                          index=True)
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.REQUESTED.value)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the provider's refusal
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # and again at each retry
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CheckoutModel(db.Model):
    """A provider-side checkout made for an order (a Stripe Checkout Session), so that it can be
    asked about and closed later. A retry late in an order's life can make a second one."""

    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("provider", "reference", name="uq_checkouts_provider_reference"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(32, collation=BINARY_COLLATION), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(255, collation=BINARY_COLLATION))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DevLedgerModel(db.Model):
    """The dev provider's own books, written as a remote provider would keep them: in their own
    transaction, never in the service's. Empty unless the dev provider is used."""

    __tablename__ = "dev_ledger"

    order_no: Mapped[str] = mapped_column(String(32, collation=BINARY_COLLATION), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # open, paid, closed
    transaction_id: Mapped[str | None] = mapped_column(String(128, collation=BINARY_COLLATION), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[str | None] = mapped_column(Text, nullable=True)  # {refund key: amount}, JSON
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
