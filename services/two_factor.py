"""TOTP two-factor sign-in for token-only clients: no cookie, no server session.

With it on, a password or code login answers a challenge (a signed token, 5 minutes, usable
once) instead of tokens; POST /2fa/verify with the challenge and a TOTP code or a recovery code
answers the token pair. A code is accepted within one 30 s step either side of now, once: each
accepted step is remembered until it can no longer be accepted. Wrong codes count toward the
password lockout. A refresh never asks again; a password reset leaves two-factor on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import pyotp
import segno

import codes
from errors import ApiError
from extensions import db
from models import UserModel
from models.base import utcnow
from services import audit, auth, tokens
from services.base import commit
from store import login_failures, two_factor

CHALLENGE_TTL = 300  # seconds
STEP = 30  # seconds of one TOTP code
WINDOW = 1  # steps either side of now
RECOVERY_CODES = 10
ISSUER = "Flask API"


def setup(user_id: int) -> dict[str, str]:
    """A new secret, not yet in force: enable() turns it on with a first code from the app."""
    user = auth.lock_row(user_id)
    if user.totp_enabled_at is not None:
        db.session.rollback()
        raise ApiError(codes.AUTH_TWO_FACTOR_ON)
    user.totp_secret = pyotp.random_base32()
    commit()
    uri = pyotp.TOTP(user.totp_secret, interval=STEP).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": user.totp_secret, "otpauth_uri": uri, "qr_svg": segno.make(uri).svg_inline(scale=4)}


def enable(user_id: int, code: str) -> dict[str, list[str]]:
    """Turn two-factor on with a code of the set-up secret; the recovery codes, shown this once."""
    user = auth.lock_row(user_id)
    if user.totp_enabled_at is not None:
        db.session.rollback()
        raise ApiError(codes.AUTH_TWO_FACTOR_ON)
    if user.totp_secret is None:
        db.session.rollback()
        raise ApiError(codes.AUTH_TWO_FACTOR_NOT_SET_UP)
    if not _accept_totp(user, code):
        db.session.rollback()
        raise ApiError(codes.AUTH_TWO_FACTOR_CODE_INVALID)
    recovery = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    user.recovery_codes = json.dumps([_digest(code) for code in recovery])
    user.totp_enabled_at = utcnow()
    audit.record("two_factor_enabled", user_id)
    commit()
    return {"recovery_codes": recovery}


def disable(user_id: int, code: str | None, password: str | None) -> None:
    """Turn two-factor off, proven by a current code (or a recovery code) or by the password."""
    user = db.session.get(UserModel, user_id)
    if user.totp_enabled_at is None:
        raise ApiError(codes.AUTH_TWO_FACTOR_NOT_SET_UP)
    if password is not None:
        auth.check_password(user.email, user.password_hash, password)
        user = auth.lock_unchanged(user_id, user.password_hash)
    else:
        user = auth.lock_row(user_id)
        if not (_accept_totp(user, code) or _use_recovery_code(user, code)):
            db.session.rollback()
            auth.record_failure(user.email)
    user.totp_secret = user.totp_enabled_at = user.recovery_codes = None
    audit.record("two_factor_disabled", user_id)
    commit()


def required(user: UserModel) -> bool:
    return user.totp_enabled_at is not None


def challenge(user: UserModel, device_id: str | None) -> dict[str, Any]:
    """What a login answers instead of tokens while two-factor is on (the caller commits nothing)."""
    return {"mfa_required": True, "mfa_token": tokens.issue_challenge(user.id, device_id, CHALLENGE_TTL),
            "expires_in": CHALLENGE_TTL}


def verify(mfa_token: str, code: str | None, recovery_code: str | None, ip: str) -> dict[str, Any]:
    """The second step: a challenge and a TOTP or recovery code, once each, answer the token pair."""
    claims = tokens.decode(mfa_token, "mfa")
    user = auth.lock_row(claims["uid"])
    auth.refuse_if_locked(user.email)
    if not two_factor.spend_token(user.id, claims["jti"], claims["exp"] - int(time.time())):
        db.session.rollback()
        raise ApiError(codes.AUTH_TOKEN_REVOKED)  # used already: sign in again
    recovered = recovery_code is not None and _use_recovery_code(user, recovery_code)
    if not (recovered or (code is not None and _accept_totp(user, code))):
        db.session.rollback()
        auth.record_failure(user.email)  # counts toward the lockout, and raises
    login_failures.clear(user.email)
    user.record_login()
    audit.record("recovery_code_used" if recovered else "login", user.id, claims.get("device_id"),
                 second_factor="recovery_code" if recovered else "totp")
    return auth.start_session(user, claims.get("device_id"), ip)


def _accept_totp(user: UserModel, code: str | None) -> bool:
    if not code or user.totp_secret is None:
        return False
    totp = pyotp.TOTP(user.totp_secret, interval=STEP)
    for offset in range(-WINDOW, WINDOW + 1):
        step = totp.timecode(utcnow()) + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            return two_factor.use_step(user.id, step, (2 * WINDOW + 2) * STEP)  # until no window holds it
    return False


def _use_recovery_code(user: UserModel, code: str | None) -> bool:
    """Spend one recovery code (the row is locked by the caller)."""
    stored = json.loads(user.recovery_codes or "[]")
    digest = _digest(code or "")
    if not code or digest not in stored:
        return False
    stored.remove(digest)
    user.recovery_codes = json.dumps(stored)
    return True


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
