"""Every payment notification that passed its provider's signature check."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import BINARY_COLLATION, UTCDateTime, utcnow


class PaymentOutcome(StrEnum):
    PAID = "paid"  # turned its order from PENDING into PAID
    AMOUNT_MISMATCH = "amount_mismatch"  # amount or currency differ from the order's; order untouched
    NEEDS_REFUND = "needs_refund"  # money arrived for an order that was no longer payable
    UNKNOWN_ORDER = "unknown_order"  # names an order_no this service does not know


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
