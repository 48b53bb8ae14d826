from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
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
    # Set by the first sign-in with an emailed code; until then the address is unproven.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when the user deleted the account: the row stays, emptied, for the orders that name it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Two-factor: the TOTP secret (set up, then enabled by a first code) and the SHA-256 digests of
    # the unused recovery codes, as a JSON list.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recovery_codes: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __init__(self, **kwargs: object) -> None:
        # Column defaults apply only at INSERT; a new user's counters are usable before that.
        kwargs.setdefault("login_count", 0)
        super().__init__(**kwargs)

    def record_login(self) -> None:
        self.login_count += 1
        self.last_login_at = utcnow()
