"""Accounts: passwords, login, lockout, token pairs, email codes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import smtplib
import sys
import threading
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import codes
import metrics
from config import settings
from errors import ApiError
from extensions import db
from models import UserModel
from models.base import utcnow
from schemas.auth import UserSchema
from services import audit, mailer, tokens, two_factor
from services.base import commit
from store import account_events, address_limits, email_codes, login_failures, sessions, user_snapshot
from store.sessions import Issued

log = logging.getLogger("flask_api.auth")
# One argon2 computation (hash or verify) at a time per process: each already runs its 4 lanes on
# threads of its own and fills 64 MiB, so a worker's threads side by side only thrash the CPU and caches.
_argon2_slot = threading.BoundedSemaphore(1)
_user_schema = UserSchema()


def init_app(app: Flask) -> None:
    """argon2id at auth.password_hashing, and the hash verified against when an email has no
    password, so that both cases cost the same: made at start, so the first such login costs what
    every other does (and gunicorn's preload makes it once)."""
    cost = app.config["SETTINGS"].auth.password_hashing
    hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_cost, parallelism=cost.parallelism)
    app.extensions["password_hasher"] = (hasher, hasher.hash(secrets.token_hex(16)))


def _hasher() -> tuple[PasswordHasher, str]:
    return current_app.extensions["password_hasher"]


def hash_password(password: str) -> str:
    return _argon2(_hasher()[0].hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return _argon2(hasher.verify, password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _argon2(compute: Callable[..., Any], *args: Any) -> Any:
    """One argon2 computation at a time per process; under gevent, on a real thread of the hub's
    pool: argon2 releases the GIL, but a greenlet computing it would hold up every other request of
    its worker for the whole 100 ms (a login loop beside a /me load took /me's p99 from 37 to 192 ms)."""
    with _argon2_slot:
        if _under_gevent():
            from gevent import get_hub

            return get_hub().threadpool.apply(compute, args)
        return compute(*args)


def _under_gevent() -> bool:
    """gunicorn.conf.py patched the standard library for gevent workers (never imported otherwise)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def session_ttl() -> int:
    return settings.auth.refresh_token_ttl + settings.auth.refresh_grace_seconds


def public_user(user: UserModel) -> dict[str, Any]:
    return _user_schema.dump(user)


def token_pair(issued: Issued) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": settings.auth.access_token_ttl,
        "refresh_expires_in": settings.auth.refresh_token_ttl,
    }


def start_session(user: UserModel, device_id: str | None, ip: str) -> dict[str, Any]:
    """Issue and track a new pair for a user who just proved who they are (from ip), then commit.

    Redis goes first: if it fails, the transaction rolls back and nothing changed.
    """
    db.session.flush()
    issued = tokens.issue_pair(user.id, device_id=device_id)
    sessions.store_issued(user.id, issued, settings.auth.max_sessions_per_user, session_ttl(), ip)
    snapshot = public_user(user)
    user_snapshot.save(user.id, snapshot, session_ttl())
    commit()
    return {**token_pair(issued), "user": snapshot}


def seconds_locked(email: str) -> int:
    return login_failures.seconds_locked(email, settings.auth.max_failed_logins)


def refuse_if_locked(email: str) -> None:
    seconds = seconds_locked(email)
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)


def lock_row(user_id: int) -> UserModel:
    """The user row, locked for this transaction and freshly read."""
    statement = select(UserModel).where(UserModel.id == user_id).with_for_update()
    user = db.session.execute(statement, execution_options={"populate_existing": True}).scalar_one_or_none()
    if user is None or user.deleted_at is not None:  # deleted while this request was under way
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    return user


def find_user(email: str) -> UserModel | None:
    return db.session.scalar(select(UserModel).where(UserModel.email == email))


def register(email: str, password: str, nickname: str | None, ip: str) -> dict[str, Any]:
    """Create an account and log it in."""
    if find_user(email) is not None:
        raise ApiError(codes.USER_EMAIL_TAKEN)
    user = _create_user(email, hash_password(password), nickname)
    audit.record("registered", user.id)
    return start_session(user, None, ip)


def _create_user(email: str, password_hash: str, nickname: str | None, verified: bool = False) -> UserModel:
    """Insert a logged-in account (flushed, not committed); 409 if the email has one by now."""
    user = UserModel(email=email, password_hash=password_hash, nickname=nickname,
                     email_verified_at=utcnow() if verified else None)
    user.record_login()
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # the same email registered by a parallel request
        db.session.rollback()
        raise ApiError(codes.USER_EMAIL_TAKEN) from None
    return user


def check_password(email: str, password_hash: str | None, password: str) -> None:
    """The lockout first, then the password (argon2, outside any row lock); a wrong one counts
    toward the lockout. Raises unless the password is right."""
    refuse_if_locked(email)
    if not verify_password(password_hash, password):
        record_failure(email)


def lock_unchanged(user_id: int, password_hash: str | None) -> UserModel:
    """The user row, locked, as long as its password is still the one just checked (a code login
    proving the mailbox, a reset or a change may have replaced it meanwhile)."""
    user = lock_row(user_id)
    if user.password_hash != password_hash:
        commit()
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    return user


@metrics.counted_login
def login(email: str, password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Password login with lockout. An unknown email, a wrong password and an account without
    one answer, cost and lock alike: the lockout counts by email, in Redis, whatever the email."""
    user = find_user(email)
    password_hash = user.password_hash if user else None
    try:
        check_password(email, password_hash, password)
    except ApiError as refused:  # kept in the account's history (an unknown email has none), then answered
        audit.record_now("login_locked" if refused.code == codes.AUTH_ACCOUNT_LOCKED else "login_wrong_password",
                         user.id if user else None, device_id)
        raise
    user = lock_unchanged(user.id, password_hash)
    refuse_if_locked(email)  # locked by parallel attempts while we verified
    if two_factor.required(user):  # the lockout count stays until the second step passes too
        commit()
        return two_factor.challenge(user, device_id)
    login_failures.clear(email)
    user.record_login()
    if _hasher()[0].check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record("login", user.id, device_id)
    return start_session(user, device_id, ip)


def note_rate_limited(email: str | None) -> None:
    """A login the rate limit refused: in the account's history once a minute at most (a flood
    sets the pace here), and in nobody's for an unknown email."""
    if email and account_events.first_limited_login(email):
        user = find_user(email)
        audit.record_now("login_rate_limited", user.id if user else None)


def record_failure(email: str) -> None:
    """Count one wrong password in one atomic step, so parallel attempts lose no increment and
    none gets past the lock; always raises."""
    seconds = login_failures.record(email, settings.auth.max_failed_logins, int(settings.auth.lockout_minutes * 60_000))
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)
    raise ApiError(codes.AUTH_INVALID_CREDENTIALS)


def refresh(refresh_token: str, ip: str) -> dict[str, Any]:
    """Rotate a refresh token: a new pair in the same session, or 401; 429 over auth.rate_limits.refresh_per_ip,
    which the rotation counts in its own Redis call."""
    try:
        claims = tokens.decode(refresh_token, "refresh")
    except ApiError:
        count_refresh(ip)  # refused unread, it counts all the same (and over the limit, answers 429)
        raise
    issued = tokens.issue_pair(claims["uid"], sid=claims["sid"], device_id=claims.get("device_id"),
                               generation=claims["gen"] + 1)
    rotation = sessions.rotate(claims["uid"], refresh_token, claims["gen"], issued, settings.auth.refresh_grace_seconds,
                               session_ttl(), ip, limit=_refresh_limit(ip))
    if rotation.outcome == "limited":
        raise _limited(rotation.retry_after)
    metrics.refresh(rotation.outcome)
    if rotation.outcome == "reuse":
        log.warning("refresh token reuse detected: every session revoked",
                    extra={"fields": {"user_id": claims["uid"], "sid": claims["sid"]}})
        audit.record_now("refresh_reuse", claims["uid"], claims.get("device_id"), session=claims["sid"])
    if rotation.refresh_token is None:
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return {**token_pair(issued), "refresh_token": rotation.refresh_token}


def count_refresh(ip: str) -> None:
    """Count a refresh that no rotation will count (its body or its token was refused) against the
    address's limit; 429 when over it."""
    wait = address_limits.hit(_refresh_limit(ip))
    if wait:
        raise _limited(wait)


def _refresh_limit(ip: str) -> address_limits.Windows:
    return address_limits.refresh_windows(ip, settings.auth.rate_limits.refresh_per_ip)


def _limited(seconds: int) -> ApiError:
    metrics.rate_limited()
    return ApiError.retry_after(codes.RATE_LIMITED, seconds)


def logout(user_id: int, sid: str, everywhere: bool) -> None:
    if everywhere:
        sessions.revoke_all(user_id)
    else:
        sessions.revoke_session(user_id, sid)
    audit.record_now("logout_all" if everywhere else "logout", user_id, session=sid)


def current_snapshot(user_id: int) -> dict[str, Any] | None:
    """The user for an authenticated request whose snapshot fell out of Redis."""
    user = db.session.get(UserModel, user_id)
    if user is None or user.deleted_at is not None:
        return None
    snapshot = public_user(user)
    user_snapshot.save(user_id, snapshot, session_ttl())
    return snapshot


def _code_hash(email: str, code: str, purpose: str) -> str:
    """HMAC of the code, bound to its email and purpose (a login code never passes as a reset code)."""
    key = settings.auth.jwt_secret.encode()
    message = f"{email}:{code}" if purpose == "login" else f"{purpose}:{email}:{code}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _claim_resend_window(email: str, purpose: str) -> None:
    wait = email_codes.claim_slot(email, settings.auth.email_code_resend_seconds, purpose)
    if wait:
        raise ApiError.retry_after(codes.AUTH_EMAIL_CODE_TOO_SOON, wait)


def _mail(email: str, subject: str, text: str, purpose: str) -> dict[str, int]:
    """Send; if the mail cannot go, no code is pending and the resend window is open again."""
    try:
        mailer.send(email, subject, text)
    except (smtplib.SMTPException, OSError) as exc:
        email_codes.discard(email, purpose)
        log.warning("email code not sent: %s", exc.__class__.__name__)
        metrics.email_code(purpose, "failed")
        raise ApiError(codes.AUTH_EMAIL_SEND_FAILED) from None
    metrics.email_code(purpose, "sent")
    return {"resend_after": settings.auth.email_code_resend_seconds}


def _new_code() -> tuple[str, int]:
    return f"{secrets.randbelow(1_000_000):06d}", max(1, settings.auth.email_code_ttl // 60)


def send_email_code(email: str, purpose: str = "login") -> dict[str, int]:
    """Mail a 6-digit code for purpose ("login" or "reset"); the answer is the same whether the
    email has an account or not, and so is the mail."""
    _claim_resend_window(email, purpose)
    code, minutes = _new_code()
    email_codes.store(email, _code_hash(email, code, purpose), settings.auth.email_code_ttl, purpose)
    if purpose == "login":
        subject = gettext("Your sign-in code")
        text = gettext("Your sign-in code is %(code)s. It expires in %(minutes)s minutes.", code=code, minutes=minutes)
    else:
        subject = gettext("Your password reset code")
        text = gettext("Your password reset code is %(code)s. It expires in %(minutes)s minutes. "
                       "If you did not ask for it, ignore this mail: your password stays as it is.",
                       code=code, minutes=minutes)
    sent = _mail(email, subject, text, purpose)
    user = find_user(email)
    audit.record_now("code_sent", user.id if user else None, purpose=purpose)
    return sent


def confirmation_required() -> bool:
    return settings.auth.require_email_confirmation


def begin_registration(email: str, password: str, nickname: str | None) -> dict[str, int]:
    """With auth.require_email_confirmation: nothing is created yet. A new email gets a code that
    confirm_registration turns into the account; a taken one a mail saying so. Both answers, and
    their cost (an argon2 hash each), are the same."""
    password_hash = hash_password(password)
    _claim_resend_window(email, "register")
    code, minutes = _new_code()
    # A taken email gets a pending registration too, under a code nobody is sent, so that confirming
    # answers and costs alike whether the address has an account or not.
    email_codes.store(email, _code_hash(email, f"{code}:{password_hash}", "register"), settings.auth.email_code_ttl,
                      "register", {"password_hash": password_hash, "nickname": nickname or ""})
    if find_user(email) is not None:
        return _mail(email, gettext("You already have an account"),
                     gettext("Someone, perhaps you, tried to sign up with this address, which already has "
                             "an account. Sign in with your password or with an emailed code, or reset "
                             "your password. If it was not you, ignore this mail."), "register")
    return _mail(email, gettext("Confirm your email"),
                 gettext("Your confirmation code is %(code)s. It expires in %(minutes)s minutes.",
                         code=code, minutes=minutes), "register")


def confirm_registration(email: str, code: str, password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Create the account a registration asked for, once its mailed code and its password are
    presented. The password is asked again so that someone who registered the address after the
    owner cannot have the owner confirm an account with the other person's password."""
    pending = email_codes.pending_fields(email, "register")
    # verified first, pending or not: with none pending, the dummy hash costs the same
    if not verify_password(pending.get("password_hash"), password) and pending:
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    # The code's HMAC covers the password hash: a registration replaced in between fails here.
    consume_code(email, f"{code}:{pending.get('password_hash', '')}", "register")
    user = _create_user(email, pending["password_hash"], pending["nickname"] or None, verified=True)
    audit.record("email_confirmed", user.id, device_id)
    return start_session(user, device_id, ip)


def consume_code(email: str, code: str, purpose: str) -> None:
    """Consume a mailed code, or raise why it does not count."""
    auth = settings.auth
    outcome = email_codes.verify(email, _code_hash(email, code, purpose), auth.email_code_max_attempts,
                                 auth.email_code_max_failures, auth.email_code_failure_window, purpose)
    if outcome == "wrong":
        raise ApiError(codes.AUTH_EMAIL_CODE_INVALID)
    if outcome == "blocked":
        raise ApiError(codes.AUTH_EMAIL_CODE_BLOCKED)
    if outcome != "ok":
        raise ApiError(codes.AUTH_EMAIL_CODE_EXPIRED)


def _use_code(email: str, code: str, purpose: str) -> UserModel:
    """Consume a mailed code; the email's user, locked for this transaction and created on first use."""
    consume_code(email, code, purpose)
    user = find_user(email) or _create_code_user(email)
    return lock_row(user.id)


def email_code_login(email: str, code: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Log in with a mailed code, creating the account on first use."""
    user = _use_code(email, code, "login")
    if user.email_verified_at is None:
        _prove_address(user)
    if two_factor.required(user):
        commit()
        return two_factor.challenge(user, device_id)
    login_failures.clear(email)  # owning the mailbox also lifts a password lockout
    user.record_login()
    audit.record("code_login", user.id, device_id)
    return start_session(user, device_id, ip)


def reset_password(email: str, code: str, new_password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Set a new password with a mailed reset code: every session ends (a refresh token in its
    grace window too), the lockout lifts, and a fresh pair answers. Like a code login, owning the
    mailbox creates the account if there is none."""
    new_hash = hash_password(new_password)
    user = _use_code(email, code, "reset")
    sessions.revoke_all(user.id)  # before the commit: a failure leaves the old password
    user.password_hash = new_hash
    user.email_verified_at = user.email_verified_at or utcnow()
    login_failures.clear(email)
    user.record_login()
    audit.record("password_reset", user.id, device_id)
    return start_session(user, device_id, ip)


def _prove_address(user: UserModel) -> None:
    """The first code login proves the mailbox. Whoever registered the address before (perhaps
    not its owner) loses the password and every session; the owner can set a password again."""
    if user.password_hash is not None:
        sessions.revoke_all(user.id)
        user.password_hash = None
    user.email_verified_at = utcnow()


def _create_code_user(email: str) -> UserModel:
    user = UserModel(email=email, password_hash=None)
    db.session.add(user)
    try:
        commit()
        return user
    except IntegrityError:  # created by a parallel first login (already rolled back)
        return find_user(email)


def unlock(email: str) -> UserModel | None:
    """Operator: clear a lockout."""
    user = find_user(email)
    if user is not None:
        login_failures.clear(email)
    return user


def delete_account(email: str) -> UserModel | None:
    """Operator: remove an account; its tokens stop working at once.

    An account with orders is kept (they are financial records): the foreign key
    refuses the delete and IntegrityError reaches the caller, after every session
    was revoked.
    """
    user = find_user(email)
    if user is not None:
        sessions.forget_user(user.id)
        db.session.delete(user)
        commit()
        sessions.forget_user(user.id)  # and whatever a login racing with the delete stored
    return user


def revoke_everywhere(email: str) -> UserModel | None:
    """Operator: log a user out of every session."""
    user = find_user(email)
    if user is not None:
        sessions.revoke_all(user.id)
    return user
