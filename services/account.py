"""The signed-in user's own account: the profile, the password, two-factor sign-in, sessions by
device, leaving. The sensitive ones are behind the step-up rule (blueprints: login_required(step_up=True))."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_babel import gettext

import codes
from errors import ApiError
from extensions import db
from models.base import utcnow
from schemas.passwords import refuse_email_name
from services import audit
from services.base import commit
from services.signin import accounts, authenticator, mailbox, passkeys, passwords, policy
from services.signin import sessions as signin_sessions
from store import login_failures, sessions, user_snapshot


def update_profile(user_id: int, nickname: str | None) -> dict[str, Any]:
    """Rename the user; the snapshot that /me answers from changes with the row."""
    user = accounts.lock_row(user_id)
    user.nickname = nickname
    db.session.flush()
    shown = signin_sessions.public_user(user)
    user_snapshot.save(user_id, shown, signin_sessions.session_ttl())  # before the commit: a failure changes nothing
    commit()
    return shown


def change_password(user_id: int, current: str, new: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Set a new password. Every session ends, the asking one's tokens too (a thief may hold a copy
    of them), and the asking device signs in again with what it just proved, the password: a pair
    in a new session, or where two-factor is on, the challenge. A wrong current password counts
    toward the lockout like a failed login."""
    user = accounts.signed_in(user_id)
    email, verified = user.email, user.password_hash
    refuse_email_name(new, email, "new_password")  # the body has no email: checked here
    passwords.check(email, verified, current)
    new_hash = passwords.hash_password(new)
    user = accounts.lock_unchanged(user_id, verified)
    user.password_hash = new_hash
    sessions.revoke_all(user_id)  # before the commit: a failure leaves the old password
    audit.record("password_changed", user_id, device_id)
    return policy.grant(user, {"pwd"}, device_id, ip)


def delete_account(user_id: int, password: str | None, code: str | None) -> None:
    """The user leaves: proven by the password or by a sign-in code mailed to the address, every
    session ends at once and the row is emptied (email, password, two-factor, nickname) but kept,
    so that the user's orders and payments stay on record; the address can register again."""
    user = accounts.signed_in(user_id)
    email, verified = user.email, user.password_hash
    if password is not None:
        passwords.check(email, verified, password)
        user = accounts.lock_unchanged(user_id, verified)
    else:
        mailbox.consume(email, code, "login")
        user = accounts.lock_row(user_id)
    sessions.forget_user(user_id)  # before the commit: a failure deletes nothing
    accounts.clear_factors(user)
    user.email, user.nickname = f"deleted-{user_id}@invalid", None
    user.email_verified_at, user.deleted_at = None, utcnow()
    audit.record("account_deleted", user_id)
    commit()
    sessions.forget_user(user_id)  # and whatever a refresh racing with the delete stored
    login_failures.clear(email)
    login_failures.clear_second_factor(user_id)


def set_up_two_factor(user_id: int) -> dict[str, str]:
    """A new secret, not yet in force: enable_two_factor() turns it on with a first code from the app.
    Only for a proven address: its first proof clears every factor set before it (someone else may
    have registered it), so two-factor on an unproven one would fall to whoever reads its mail."""
    user = accounts.lock_row(user_id)
    if authenticator.is_on(user):
        raise ApiError(codes.AUTH_TWO_FACTOR_ON)
    if user.email_verified_at is None:
        raise ApiError(codes.AUTH_EMAIL_UNPROVEN)
    shown = authenticator.new_secret(user)
    commit()
    return shown


def enable_two_factor(user_id: int, sid: str, code: str) -> dict[str, list[str]]:
    """Turn two-factor on with a code of the set-up secret; every other session ends (a copied
    token must not outlive the change). The recovery codes answer, shown this once."""
    user = accounts.lock_row(user_id)
    if authenticator.is_on(user):
        raise ApiError(codes.AUTH_TWO_FACTOR_ON)
    if user.email_verified_at is None:
        raise ApiError(codes.AUTH_EMAIL_UNPROVEN)
    if user.totp_secret is None:
        raise ApiError(codes.AUTH_TWO_FACTOR_NOT_SET_UP)
    if not authenticator.accept_totp(user, code):
        raise ApiError(codes.AUTH_TWO_FACTOR_CODE_INVALID)
    recovery = authenticator.turn_on(user)
    sessions.revoke_others(user_id, sid)  # before the commit: a failure at worst signs devices out
    audit.record("two_factor_enabled", user_id)
    commit()
    return {"recovery_codes": recovery}


def disable_two_factor(user_id: int, code: str | None, password: str | None) -> None:
    """Turn two-factor off, proven once more by a current code (or a recovery code) or by the
    password; refused while the proof's lockout holds, before any check."""
    user = accounts.signed_in(user_id)
    if not authenticator.is_on(user):
        raise ApiError(codes.AUTH_TWO_FACTOR_NOT_SET_UP)
    if password is not None:
        passwords.check(user.email, user.password_hash, password)
        user = accounts.lock_unchanged(user_id, user.password_hash)
    else:
        user = accounts.lock_row(user_id)
        authenticator.prove(user, code, code)
    authenticator.turn_off(user)
    audit.record("two_factor_disabled", user_id)
    commit()


def add_passkey_options(user_id: int) -> dict[str, Any]:
    """Creation options for a new passkey (the user picks or makes one on the device); like
    two-factor, only for a proven address, whose first proof would clear it."""
    user = accounts.signed_in(user_id)
    if user.email_verified_at is None:
        raise ApiError(codes.AUTH_EMAIL_UNPROVEN)
    return {"options": passkeys.registration_options(user)}


def add_passkey(user_id: int, credential: dict[str, Any], name: str) -> Any:
    """Keep the passkey the device made for the pending options."""
    user = accounts.lock_row(user_id)
    key = passkeys.register(user, credential, name)
    audit.record("passkey_added", user_id, passkey=key.id)
    commit()
    # A passkey signs in on its own: should it not be the owner's, the owner hears of it at once.
    mailbox.notify(user.email, gettext("A passkey was added to your account"),
                   gettext("A passkey named %(name)s was added to your account. If it was not you, remove "
                           "it from your account's passkeys and reset your password.", name=key.name))
    return key


def list_passkeys(user_id: int) -> dict[str, Any]:
    return {"items": passkeys.of_user(user_id)}


def rename_passkey(user_id: int, passkey_id: int, name: str) -> Any:
    key = passkeys.owned(user_id, passkey_id)
    key.name = name
    audit.record("passkey_renamed", user_id, passkey=key.id)
    commit()
    return key


def remove_passkey(user_id: int, sid: str, passkey_id: int) -> None:
    """Remove one; every other session ends too, since a session does not say which key opened it
    (a thief's among them)."""
    key = passkeys.owned(user_id, passkey_id)
    db.session.delete(key)
    sessions.revoke_others(user_id, sid)  # before the commit: a failure at worst signs devices out
    audit.record("passkey_removed", user_id, passkey=passkey_id)
    commit()


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


def end_other_sessions(user_id: int, sid: str) -> None:
    """End every session of the user's but the asking one."""
    sessions.revoke_others(user_id, sid)
    audit.record_now("other_sessions_ended", user_id, session=sid)


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
