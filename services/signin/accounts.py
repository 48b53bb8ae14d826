"""The user rows that signing in reads, locks and creates."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

import codes
from errors import ApiError
from extensions import db
from models import PasskeyModel, UserModel
from models.base import utcnow
from services.base import commit


def find_user(email: str) -> UserModel | None:
    return db.session.scalar(select(UserModel).where(UserModel.email == email))


def lock_row(user_id: int) -> UserModel:
    """The user row, locked for this transaction and freshly read."""
    statement = select(UserModel).where(UserModel.id == user_id).with_for_update()
    user = db.session.execute(statement, execution_options={"populate_existing": True}).scalar_one_or_none()
    if user is None or user.deleted_at is not None:  # deleted while this request was under way
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    return user


def lock_unchanged(user_id: int, password_hash: str | None) -> UserModel:
    """The user row, locked, as long as its password is still the one just checked (a code login
    proving the mailbox, a reset or a change may have replaced it meanwhile)."""
    user = lock_row(user_id)
    if user.password_hash != password_hash:
        commit()
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    return user


def signed_in(user_id: int) -> UserModel:
    """The caller's row, read without a lock (a password check comes before any lock)."""
    user = db.session.get(UserModel, user_id)
    if user is None or user.deleted_at is not None:  # gone while its token was still live
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return user


def create_user(email: str, password_hash: str | None, nickname: str | None, verified: bool = False) -> UserModel:
    """Insert an account (flushed, not committed); 409 if the email has one by now."""
    user = UserModel(email=email, password_hash=password_hash, nickname=nickname,
                     email_verified_at=utcnow() if verified else None)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # the same email registered by a parallel request
        db.session.rollback()
        raise ApiError(codes.USER_EMAIL_TAKEN) from None
    return user


def create_code_user(email: str) -> UserModel:
    """The account a first mailed code makes for an address without one (committed)."""
    user = UserModel(email=email, password_hash=None)
    db.session.add(user)
    try:
        commit()
        return user
    except IntegrityError:  # created by a parallel first login (already rolled back)
        return find_user(email)


def clear_factors(user: UserModel) -> None:
    """Forget every credential of the account: its password, its two-factor secret and codes, its passkeys."""
    user.password_hash = None
    user.totp_secret = user.totp_enabled_at = user.recovery_codes = None
    db.session.execute(delete(PasskeyModel).where(PasskeyModel.user_id == user.id))
