"""The authenticator factor: a TOTP app's codes ("totp") and the recovery codes ("recovery"),
and the lockout after wrong ones, by user.

A code is accepted within one 30 s step either side of now, once: each accepted step is
remembered until it can no longer be accepted. Wrong codes count toward a lockout of the user's
second step alone (store/login_failures.py): only someone past a first factor can add to it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets

import pyotp
import segno

import codes
from config import settings
from errors import ApiError
from models import UserModel
from models.base import utcnow
from store import login_failures, two_factor

STEP = 30  # seconds of one TOTP code
WINDOW = 1  # steps either side of now
RECOVERY_CODES = 10
ISSUER = "Flask API"


def is_on(user: UserModel) -> bool:
    return user.totp_enabled_at is not None


def new_secret(user: UserModel) -> dict[str, str]:
    """A new secret on the row, not yet in force, with what an app needs to take it."""
    user.totp_secret = pyotp.random_base32()
    uri = pyotp.TOTP(user.totp_secret, interval=STEP).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": user.totp_secret, "otpauth_uri": uri, "qr_svg": _standalone_svg(uri)}


def _standalone_svg(text: str) -> str:
    """The QR code as an SVG document with its namespace, so that it also shows as an <img> source."""
    out = io.BytesIO()
    segno.make(text).save(out, kind="svg", xmldecl=False, nl=False, scale=4)
    return out.getvalue().decode()


def turn_on(user: UserModel) -> list[str]:
    """Put the set-up secret in force; the recovery codes, to show once (their digests are kept)."""
    recovery = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    user.recovery_codes = json.dumps([_digest(code) for code in recovery])
    user.totp_enabled_at = utcnow()
    return recovery


def turn_off(user: UserModel) -> None:
    user.totp_secret = user.totp_enabled_at = user.recovery_codes = None


def prove(user: UserModel, code: str | None, recovery_code: str | None) -> str:
    """The factor a TOTP code or a recovery code proves ("totp" or "recovery"), the row locked by
    the caller; refused while the user's second step is locked, before any check, and a wrong code
    counts toward that lock."""
    refuse_if_locked(user.id)
    if recovery_code is not None and _use_recovery_code(user, recovery_code):
        return "recovery"
    if code is not None and accept_totp(user, code):
        return "totp"
    seconds = login_failures.record_second_factor(user.id, settings.auth.max_failed_logins,
                                                  int(settings.auth.lockout_minutes * 60_000))
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)
    raise ApiError(codes.AUTH_TWO_FACTOR_CODE_INVALID)


def refuse_if_locked(user_id: int) -> None:
    seconds = login_failures.second_factor_seconds_locked(user_id, settings.auth.max_failed_logins)
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)


def clear_lockout(user_id: int) -> None:
    login_failures.clear_second_factor(user_id)


def accept_totp(user: UserModel, code: str | None) -> bool:
    """A code of the row's secret, in its window and not used before (then used)."""
    if not code or user.totp_secret is None:
        return False
    totp = pyotp.TOTP(user.totp_secret, interval=STEP)
    presented = code.encode()  # bytes: compare_digest refuses a str that is not ASCII
    for offset in range(-WINDOW, WINDOW + 1):
        step = totp.timecode(utcnow()) + offset
        if hmac.compare_digest(totp.generate_otp(step).encode(), presented):
            return two_factor.use_step(user.id, step, (2 * WINDOW + 2) * STEP)  # until no window holds it
    return False


def _use_recovery_code(user: UserModel, code: str) -> bool:
    """Spend one recovery code (the row is locked by the caller)."""
    stored = json.loads(user.recovery_codes or "[]")
    digest = _digest(code)
    if not code or digest not in stored:
        return False
    stored.remove(digest)
    user.recovery_codes = json.dumps(stored)
    return True


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
