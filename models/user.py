from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import UTCDateTime, utcnow


class UserModel(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    nickname: Mapped[str | None] = mapped_column(String(64), nullable=True)
    login_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_login_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __init__(self, **kwargs: object) -> None:
        # Column defaults apply only at INSERT; a new user's counters are usable before that.
        kwargs.setdefault("login_count", 0)
        kwargs.setdefault("failed_login_attempts", 0)
        super().__init__(**kwargs)

    def is_locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def lock(self, minutes: float, now: datetime | None = None) -> None:
        self.locked_until = (now or utcnow()) + timedelta(minutes=minutes)

    def seconds_locked(self, now: datetime | None = None) -> int:
        if not self.is_locked(now):
            return 0
        return max(1, int((self.locked_until - (now or utcnow())).total_seconds() + 0.999))

    def record_failed_login(self, max_failures: int, lock_minutes: float) -> None:
        """Count a wrong password; the count that reaches max_failures locks the account."""
        now = utcnow()
        if self.locked_until is not None and not self.is_locked(now):  # a lock that ran out: count afresh
            self.failed_login_attempts, self.locked_until = 0, None
        self.failed_login_attempts += 1
        if self.failed_login_attempts >= max_failures:
            self.lock(lock_minutes, now)

    def record_login(self) -> None:
        self.failed_login_attempts, self.locked_until = 0, None
        self.login_count += 1
        self.last_login_at = utcnow()
