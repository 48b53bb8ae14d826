"""A user's passkeys: WebAuthn credentials, each with its public key and what it last said."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import VARBINARY, BigInteger, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import UTCDateTime, utcnow


class PasskeyModel(db.Model):
    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Gone with the account's row (an operator's delete); a user's own delete removes them first.
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(VARBINARY(1023), unique=True)  # WebAuthn allows 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE, as the authenticator gave it
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(255), default="[]")  # JSON list: internal, hybrid, usb, ...
    aaguid: Mapped[str] = mapped_column(String(36))  # the authenticator's model
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)  # synced (a "multi-device" passkey)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
