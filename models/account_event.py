"""What happened to an account, for its owner and for operators: one row per event, no secrets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import UTCDateTime, utcnow


class AccountEventModel(db.Model):
    __tablename__ = "account_events"
    # No foreign key: an account's history outlives an operator's delete of the row.
    __table_args__ = (Index("ix_account_events_user", "user_id", "id"),
                      Index("ix_account_events_fold", "user_id", "event", "created_at"),
                      Index("ix_account_events_created", "created_at"))  # the prune

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # a small JSON object
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Repeats of an event anyone can cause fold into its row (services/audit.py): how many, the last one.
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
