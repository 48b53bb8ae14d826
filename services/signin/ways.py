"""The ways in. Each proves its factors, then hands them to the policy, which alone decides
between a token pair and the two-factor challenge."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

import codes
import metrics
from errors import ApiError
from models import UserModel
from services import audit, tokens
from services.signin import accounts, authenticator, mailbox, passkeys, passwords, policy
from store import account_events, sessions


@metrics.counted_login
def login(email: str, password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Password login with lockout. An unknown email, a wrong password and an account without
    one answer, cost and lock alike: the lockout counts by email, in Redis, whatever the email."""
    user = accounts.find_user(email)
    password_hash = user.password_hash if user else None
    try:
        passwords.check(email, password_hash, password)
    except ApiError as refused:
        locked = refused.code == codes.AUTH_ACCOUNT_LOCKED
        audit.record_refused("login_locked" if locked else "login_wrong_password", user, device_id)
        raise
    user = accounts.lock_unchanged(user.id, password_hash)
    passwords.upgrade(user, password)
    return policy.grant(user, {"pwd"}, device_id, ip)


def note_rate_limited(email: str | None) -> None:
    """A login the per-email limit refused: in the account's history once a minute at most (a
    flood sets the pace here), and in nobody's for an unknown email."""
    if email and account_events.first_limited_login(email):
        audit.record_refused("login_rate_limited", accounts.find_user(email))


def send_email_code(email: str, purpose: str = "login") -> dict[str, int]:
    """Mail a code for purpose ("login" or "reset"); the answer, and its time, are the same whether
    the email has an account or not (the account's event is written after the answer)."""
    sent = mailbox.send_code(email, purpose)
    audit.record_refused("code_sent", accounts.find_user(email), purpose=purpose)
    return sent


def _use_code(email: str, code: str, purpose: str) -> UserModel:
    """Consume a mailed code; the email's user (created on first use), locked, the address proven,
    and the password lockout lifted: owning the mailbox is what a reset trusts too."""
    mailbox.consume(email, code, purpose)
    user = accounts.lock_row((accounts.find_user(email) or accounts.create_code_user(email)).id)
    mailbox.prove_address(user)
    passwords.clear_lockout(email)
    return user


def email_code_login(email: str, code: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Sign in with a mailed code, creating the account on first use."""
    return policy.grant(_use_code(email, code, "login"), {"otp"}, device_id, ip)


def reset_password(email: str, code: str, new_password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Set a new password with a mailed reset code: every session ends (a refresh token in its
    grace window too), and the answer is what the mailbox proof is worth: a pair, or the
    two-factor challenge. Like a code login, owning the mailbox creates the account if there is none."""
    new_hash = passwords.hash_password(new_password)
    user = _use_code(email, code, "reset")
    sessions.revoke_all(user.id)  # before the commit: a failure leaves the old password
    user.password_hash = new_hash
    audit.record("password_reset", user.id, device_id)
    return policy.grant(user, {"otp"}, device_id, ip)


def second_step(mfa_token: str, code: str | None, recovery_code: str | None, passkey: dict[str, Any] | None,
                ip: str) -> dict[str, Any]:
    """The challenge and a TOTP code, a recovery code or a passkey's assertion, once each,
    complete a sign-in."""
    claims = tokens.decode(mfa_token, "mfa")
    user = accounts.lock_row(claims["uid"])
    authenticator.refuse_if_locked(user.id)
    proven = policy.spend_challenge(user, claims)
    if passkey is not None:
        proven |= passkeys.prove_second_step(user.id, claims["jti"], passkey)
    else:
        proven.add(authenticator.prove(user, code, recovery_code))
    return policy.grant(user, proven, claims.get("device_id"), ip)


def second_step_passkey_options(mfa_token: str) -> dict[str, Any]:
    """Request options for completing an open challenge with one of the user's passkeys."""
    claims = tokens.decode(mfa_token, "mfa")
    return passkeys.second_step_options(claims["uid"], claims["jti"])


def passkey_sign_in(flow_id: str, credential: dict[str, Any], device_id: str | None, ip: str) -> dict[str, Any]:
    """Sign in with a passkey: no email typed, the device named the account."""
    user = accounts.lock_row(passkeys.owner_of(credential))  # the user's row first, as every path locks
    return policy.grant(user, passkeys.sign_in(flow_id, user.id, credential), device_id, ip)


def reauthenticate(user_id: int, sid: str, device_id: str | None, body: dict[str, Any], ip: str) -> dict[str, Any]:
    """Prove again, for a sensitive operation: the password or a mailed sign-in code, and the
    second factor where it is on; answers a fresh pair for the same session."""
    user = accounts.signed_in(user_id)
    email = user.email
    if body["password"] is not None:
        passwords.check(email, user.password_hash, body["password"])
        user, proven = accounts.lock_unchanged(user_id, user.password_hash), {"pwd"}
    else:
        mailbox.consume(email, body["code"], "login")
        user, proven = accounts.lock_row(user_id), {"otp"}
        passwords.clear_lockout(email)
    if authenticator.is_on(user):
        if body["totp_code"] is None and body["recovery_code"] is None:
            raise ValidationError({"totp_code": [_l("Two-factor sign-in is on: give an authenticator code "
                                                    "or a recovery code too.")]})
        proven.add(authenticator.prove(user, body["totp_code"], body["recovery_code"]))
    return policy.renew(user, proven, sid, device_id, ip)
