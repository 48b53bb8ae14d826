"""The sign-in policy: the one place where proven factors become tokens.

Every way in ends by naming what it proved, as RFC 8176 method names:

    pwd        the account's password
    otp        a code mailed to the address (sign-in, reset or registration code)
    totp       a code of the authenticator app
    recovery   one of the account's recovery codes (not an RFC 8176 name: there is none for it)
    hwk, swk   a passkey kept on one device (hwk) or synced between devices (swk)
    pin        the passkey's authenticator verified its user (a PIN or a biometric)
    mfa        added when a first factor (pwd, otp, hwk, swk) and a second are both proven: totp,
               recovery or pin; or a passkey beside a password or a mailed code

grant() turns them into a token pair when they are enough for the account, and otherwise into
the two-factor challenge, which holds what was proven and what is still needed. Tokens carry the
methods (amr) and the time of the proof (auth_time); require_recent() is the step-up rule for
sensitive operations: a proof at most auth.reauth_max_age old, with both factors where two-factor
is on (RFC 9470's insufficient_user_authentication otherwise).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import codes
from config import settings
from errors import ApiError
from extensions import db
from models import UserModel
from services import audit, tokens
from services.base import commit
from services.signin import authenticator, passkeys, passwords, sessions
from store import two_factor

KEYS = frozenset({"hwk", "swk"})
FIRST_FACTORS = frozenset({"pwd", "otp"}) | KEYS
SECOND_FACTORS = frozenset({"totp", "recovery", "pin"})
CHALLENGE_TTL = 300  # seconds


def _second(proven: set[str]) -> bool:
    """A second factor: one of SECOND_FACTORS, or a passkey beside a password or a mailed code."""
    return bool(proven & SECOND_FACTORS or (proven & KEYS and proven & (FIRST_FACTORS - KEYS)))


def amr(proven: set[str]) -> list[str]:
    both = proven & FIRST_FACTORS and _second(proven)
    return sorted(proven | {"mfa"} if both else proven)


def still_needed(user: UserModel, proven: set[str]) -> list[str]:
    """What the account asks for beyond proven: nothing, or one of the second factors."""
    if not proven & FIRST_FACTORS:
        return sorted(FIRST_FACTORS)
    if authenticator.is_on(user) and not _second(proven):
        another_passkey = not proven & KEYS and passkeys.has_any(user.id)  # a passkey twice is one factor
        return sorted({"totp", "recovery"} | ({"passkey"} if another_passkey else set()))
    return []


def grant(user: UserModel, proven: set[str], device_id: str | None, ip: str) -> dict[str, Any]:
    """A token pair in a new session if proven is enough for the account (the row locked by the
    caller), else the challenge; commits either way."""
    needed = still_needed(user, proven)
    if needed:
        commit()  # whatever the way in changed (a reset's password) stands
        return challenge(user, proven, needed, device_id)
    if "pwd" in proven:
        passwords.clear_lockout(user.email)
    if _second(proven):
        authenticator.clear_lockout(user.id)
    user.record_login()
    audit.record(_sign_in_event(proven), user.id, device_id, amr=amr(proven))
    return sessions.start(user, amr(proven), int(time.time()), device_id, ip)


def renew(user: UserModel, proven: set[str], sid: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """A fresh pair for the caller's session after a reauthentication, if proven is enough."""
    if still_needed(user, proven):
        raise ApiError(codes.AUTH_TWO_FACTOR_CODE_INVALID)
    if "pwd" in proven:
        passwords.clear_lockout(user.email)
    authenticator.clear_lockout(user.id)
    # Committed before the session changes in Redis: a commit failing after that would leave the
    # client with a refresh token the renewal replaced, whose next use counts as reuse.
    audit.record_now("reauthenticated", user.id, device_id, amr=amr(proven))
    return sessions.renew(user, sid, device_id, amr(proven), int(time.time()), ip)


def _sign_in_event(proven: set[str]) -> str:
    if proven & KEYS:
        return "passkey_login"
    if "recovery" in proven:
        return "recovery_code_used"
    if "totp" in proven:
        return "login_totp" if "pwd" in proven else "code_login_totp"
    return "login" if "pwd" in proven else "code_login"


def challenge(user: UserModel, proven: set[str], needed: list[str], device_id: str | None) -> dict[str, Any]:
    """What a sign-in answers (202) while a factor is still needed."""
    token = tokens.issue_challenge(user.id, device_id, CHALLENGE_TTL, sorted(proven), credentials(user))
    return {"mfa_required": True, "mfa_token": token, "expires_in": CHALLENGE_TTL, "needs": needed}


def credentials(user: UserModel) -> str:
    """A digest of the credentials a challenge was issued against: a password change, a reset or
    a new two-factor secret since then voids the challenge."""
    held = f"{user.password_hash}|{user.totp_secret}|{user.totp_enabled_at}"
    return hashlib.sha256(held.encode()).hexdigest()[:32]


def spend_challenge(user: UserModel, claims: dict[str, Any]) -> set[str]:
    """The factors an open challenge holds, once; 401 if it was used, or if the user's credentials
    changed since it was issued."""
    if claims.get("cred") != credentials(user):
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    if not two_factor.spend_token(user.id, claims["jti"], claims["exp"] - int(time.time())):
        raise ApiError(codes.AUTH_TOKEN_REVOKED)  # used already: sign in again
    return set(claims["amr"]) & FIRST_FACTORS


def require_recent(user_id: int, token_amr: list[str], auth_time: int) -> None:
    """Step-up: 401 unless the token's proof is at most auth.reauth_max_age old and, where
    two-factor is on, proved both factors."""
    max_age = settings.auth.reauth_max_age
    user = db.session.get(UserModel, user_id)
    fresh = auth_time >= time.time() - max_age
    if fresh and user is not None and ("mfa" in token_amr or not authenticator.is_on(user)):
        return
    raise ApiError(codes.AUTH_REAUTH_REQUIRED, headers={"WWW-Authenticate": (
        f'Bearer error="insufficient_user_authentication", '
        f'error_description="A more recent sign-in is required", max_age={max_age}')})
