"""JWT encoding and decoding: HS256 by default, only the configured algorithm accepted.

Access and refresh tokens carry what the sign-in proved: ``amr`` (RFC 8176 method names, see
services/signin/policy.py) and ``auth_time`` (unix seconds of the last proof, RFC 9470). A refresh
copies both from the token it rotates; only a sign-in or a reauthentication sets them."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

import codes
from config import settings
from errors import ApiError
from store.sessions import Issued

REQUIRED_CLAIMS = ["sub", "typ", "jti", "sid", "iat", "exp"]


def issue_pair(user_id: int, amr: list[str], auth_time: int, sid: str | None = None,
               device_id: str | None = None, generation: int = 0) -> Issued:
    """A new access + refresh pair for one login session (a new sid unless given); the refresh
    token carries its generation in the session (0 at login, one more at each rotation)."""
    cfg = settings.auth
    sid = sid or secrets.token_urlsafe(12)
    now = int(time.time())
    access_exp = now + cfg.access_token_ttl
    refresh_exp = now + cfg.refresh_token_ttl
    proof = {"amr": amr, "auth_time": auth_time}
    return Issued(
        sid=sid,
        access_token=_encode(user_id, "access", sid, device_id, now, access_exp, **proof),
        access_exp=access_exp,
        refresh_token=_encode(user_id, "refresh", sid, device_id, now, refresh_exp, gen=generation, **proof),
        refresh_exp=refresh_exp,
        device_id=device_id,
    )


def issue_challenge(user_id: int, device_id: str | None, ttl: int, amr: list[str], credentials: str) -> str:
    """A two-factor challenge: a token of its own type (never taken for an access or refresh token),
    holding the factors proven so far and a digest of the credentials it was issued against."""
    now = int(time.time())
    return _encode(user_id, "mfa", "", device_id, now, now + ttl, amr=amr, auth_time=now, cred=credentials)


def _encode(user_id: int, typ: str, sid: str, device_id: str | None, now: int, exp: int, **extra: Any) -> str:
    cfg = settings.auth
    claims: dict[str, Any] = {"sub": str(user_id), "typ": typ, "jti": secrets.token_urlsafe(16),
                              "sid": sid, "iat": now, "exp": exp, **extra}
    if device_id:
        claims["device_id"] = device_id
    return jwt.encode(claims, cfg.jwt_secret, algorithm=cfg.jwt_algorithm)


def decode(token: str, typ: str) -> dict[str, Any]:
    """Verify signature, expiry and type; any failure is a 401 with a specific code."""
    cfg = settings.auth
    try:
        claims = jwt.decode(token, cfg.jwt_secret, algorithms=[cfg.jwt_algorithm],
                            options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise ApiError(codes.AUTH_TOKEN_EXPIRED) from None
    except jwt.InvalidTokenError:
        raise ApiError(codes.AUTH_TOKEN_INVALID) from None
    if claims["typ"] != typ or not str(claims["sub"]).isdigit() or not isinstance(claims["sid"], str):
        raise ApiError(codes.AUTH_TOKEN_INVALID)
    claims.setdefault("gen", 0)  # refresh tokens issued before generations were counted
    # A token from before amr and auth_time were kept proved nothing recent: it signs in, and a
    # step-up asks it to sign in again.
    claims.setdefault("amr", [])
    claims.setdefault("auth_time", 0)
    if (type(claims["gen"]) is not int or type(claims["auth_time"]) is not int
            or not isinstance(claims["amr"], list) or not all(isinstance(m, str) for m in claims["amr"])):
        raise ApiError(codes.AUTH_TOKEN_INVALID)
    claims["uid"] = int(claims["sub"])
    return claims
