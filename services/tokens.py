"""JWT encoding and decoding: signed by the keyset's active key (services/keyset.py; HS256 with
auth.jwt_secret by default), each token naming its key's kid; verified by the key its kid names,
with that key's algorithm only.

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
from services import keyset
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
    claims: dict[str, Any] = {"sub": str(user_id), "typ": typ, "jti": secrets.token_urlsafe(16),
                              "sid": sid, "iat": now, "exp": exp, **extra}
    if device_id:
        claims["device_id"] = device_id
    key = keyset.current().signing
    return jwt.encode(claims, key.signing, algorithm=key.alg, headers={"kid": key.kid})


def decode(token: str, typ: str) -> dict[str, Any]:
    """Verify signature, expiry and type; any failure is a 401 with a specific code."""
    try:
        kid = jwt.get_unverified_header(token).get("kid", keyset.LEGACY)  # no kid: from before kids
        key = keyset.current().keys.get(kid) if isinstance(kid, str) else None
        if key is None:  # unknown, or dropped
            raise ApiError(codes.AUTH_TOKEN_INVALID)
        # The key's own algorithm, never the token's (RFC 8725): an HS256 token "signed" with a
        # published public key, or alg none, fails here.
        claims = jwt.decode(token, key.verifying, algorithms=[key.alg], options={"require": REQUIRED_CLAIMS})
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
