"""The signed-in user's own account: the profile, a password change, sessions by device."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import codes
from errors import ApiError
from extensions import db
from models import UserModel
from models.base import utcnow
from schemas.passwords import refuse_email_name
from services import audit, auth
from services.base import commit
from store import login_failures, sessions, user_snapshot


def update_profile(user_id: int, nickname: str | None) -> dict[str, Any]:
    """Rename the user; the snapshot that /me answers from changes with the row."""
    user = auth.lock_row(user_id)
    user.nickname = nickname
    db.session.flush()
    shown = auth.public_user(user)
    user_snapshot.save(user_id, shown, auth.session_ttl())  # before the commit: a failure changes nothing
    commit()
    return shown


def change_password(user_id: int, current: str, new: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Set a new password. Every session ends, the asking one's tokens too (a thief may hold a copy
    of them), and the asking device gets a fresh pair in a new session. A wrong current password
    counts toward the lockout like a failed login."""
    user = _signed_in(user_id)
    email, verified = user.email, user.password_hash
    refuse_email_name(new, email, "new_password")  # the body has no email: checked here
    auth.check_password(email, verified, current)
    new_hash = auth.hash_password(new)
    user = auth.lock_unchanged(user_id, verified)
    user.password_hash = new_hash
    sessions.revoke_all(user_id)  # before the commit: a failure leaves the old password
    login_failures.clear(email)
    audit.record("password_changed", user_id, device_id)
    return auth.start_session(user, device_id, ip)


def delete_account(user_id: int, password: str | None, code: str | None) -> None:
    """The user leaves: proven by the password or by a sign-in code mailed to the address, every
    session ends at once and the row is emptied (email, password, nickname) but kept, so that the
    user's orders and payments stay on record; the address can register again."""
    user = _signed_in(user_id)
    email, verified = user.email, user.password_hash
    if password is not None:
        auth.check_password(email, verified, password)
        user = auth.lock_unchanged(user_id, verified)
    else:
        auth.consume_code(email, code, "login")
        user = auth.lock_row(user_id)
    sessions.forget_user(user_id)  # before the commit: a failure deletes nothing
    user.email, user.password_hash, user.nickname = f"deleted-{user_id}@invalid", None, None
    user.email_verified_at, user.deleted_at = None, utcnow()
    audit.record("account_deleted", user_id)
    commit()
    sessions.forget_user(user_id)  # and whatever a refresh racing with the delete stored
    login_failures.clear(email)


def list_sessions(user_id: int, current_sid: str) -> dict[str, list[dict[str, Any]]]:
    """The user's live sessions, newest use first, from Redis alone."""
    return {"items": [{"id": session["sid"], "device_id": session["device_id"], "ip": session["ip"],
                       "created_at": _from_unix(session["created_at"]),
                       "last_used_at": _from_unix(session["last_used_at"]),
                       "current": session["sid"] == current_sid}
                      for session in sessions.live_sessions(user_id)]}


def end_session(user_id: int, sid: str) -> None:
    """End one of the user's sessions; another user's, or an ended one, answers like a missing one."""
    if sid not in {session["sid"] for session in sessions.live_sessions(user_id)}:
        raise ApiError(codes.AUTH_SESSION_NOT_FOUND)
    sessions.revoke_session(user_id, sid)
    audit.record_now("session_ended", user_id, session=sid)


def _signed_in(user_id: int) -> UserModel:
    """The caller's row, read without a lock (the password check comes before any lock)."""
    user = db.session.get(UserModel, user_id)
    if user is None or user.deleted_at is not None:  # gone while its token was still live
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return user


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
