"""Orders and their state machine: PENDING -> PAID | EXPIRED | CANCELLED, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, ForeignKey, Index, Integer, String, UniqueConstraint, Update, update
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import BINARY_COLLATION, UTCDateTime, utcnow


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


# The one table of allowed transitions; a status missing here is final.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.CANCELLED}),
}


def sources_of(target: OrderStatus) -> list[str]:
    """The statuses from which target may be reached."""
    return [source.value for source, targets in TRANSITIONS.items() if target in targets]


class OrderModel(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_status_expires", "status", "expires_at"),  # the expiry sweep
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(32, collation=BINARY_COLLATION), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    product_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    subject: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PENDING.value)
    payment_provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(128, collation=BINARY_COLLATION), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64, collation=BINARY_COLLATION), nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What went back to the buyer, in minor units: succeeded refunds of the order's payments.
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # When the provider's checkout was closed after a cancel or an expiry; NULL while a close is owed.
    checkout_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def is_due(self, now: datetime | None = None) -> bool:
        """Still PENDING although its deadline has passed: it is expired, whether swept yet or not."""
        return self.status == OrderStatus.PENDING and self.expires_at <= (now or utcnow())

    @classmethod
    def transition(cls, target: OrderStatus, *criteria: ColumnElement[bool], **values: Any) -> Update:
        """The conditional UPDATE that moves the matching orders to target, only from a status allowed to.

        The caller checks rowcount: 0 means another request changed the order first.
        """
        return (update(cls).where(cls.status.in_(sources_of(target)), *criteria)
                .values(status=target.value, **values)
                .execution_options(synchronize_session=False))

    @classmethod
    def transition_rows(cls, ids: Sequence[int], target: OrderStatus, *criteria: ColumnElement[bool],
                        **values: Any) -> Update:
        """transition() for orders named by id, reached through the primary key only.

        Left to itself the optimizer may range-scan ix_orders_status_expires for
        `status = 'PENDING' AND id = ?`, locking other orders' entries: parallel
        transitions then deadlock and a cancel waits on strangers.
        """
        statement = cls.transition(target, cls.id.in_(list(ids)), *criteria, **values)
        for dialect in ("mysql", "mariadb"):
            statement = statement.with_hint("FORCE INDEX (PRIMARY)", dialect_name=dialect)
        return statement
