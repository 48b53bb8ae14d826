"""Sessions as the client holds them: a token pair to start one, refresh it, renew it after a
reauthentication, end it; and the user snapshot an authenticated request reads."""

from __future__ import annotations

import logging
from typing import Any

import codes
import metrics
from config import settings
from errors import ApiError
from extensions import db
from models import UserModel
from schemas.auth import UserSchema
from services import audit, tokens
from services.base import commit
from store import address_limits, user_snapshot
from store import sessions as session_store
from store.sessions import Issued

log = logging.getLogger("flask_api.auth")
_user_schema = UserSchema()


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


def start(user: UserModel, amr: list[str], auth_time: int, device_id: str | None, ip: str) -> dict[str, Any]:
    """Issue and track a new pair in a new session, then commit. Only the sign-in policy calls it.

    Redis goes first: if it fails, the transaction rolls back and nothing changed.
    """
    db.session.flush()
    issued = tokens.issue_pair(user.id, amr, auth_time, device_id=device_id)
    session_store.store_issued(user.id, issued, settings.auth.max_sessions_per_user, session_ttl(), ip)
    return _answer(user, issued)


def renew(user: UserModel, sid: str, device_id: str | None, amr: list[str], auth_time: int,
          ip: str) -> dict[str, Any]:
    """A new pair in the same session, carrying a new proof; its old refresh token stops working.
    Only the sign-in policy calls it."""
    generation = session_store.generation(user.id, sid)
    if generation is None:
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    issued = tokens.issue_pair(user.id, amr, auth_time, sid=sid, device_id=device_id, generation=generation + 1)
    if not session_store.renew(user.id, issued, generation, session_ttl(), ip):
        raise ApiError(codes.AUTH_TOKEN_REVOKED)  # ended, or refreshed at the same moment: sign in again
    return _answer(user, issued)


def _answer(user: UserModel, issued: Issued) -> dict[str, Any]:
    snapshot = public_user(user)
    user_snapshot.save(user.id, snapshot, session_ttl())
    commit()
    return {**token_pair(issued), "user": snapshot}


def refresh(refresh_token: str, ip: str) -> dict[str, Any]:
    """Rotate a refresh token: a new pair in the same session, with the proof of the sign-in it
    descends from, or 401; 429 over auth.rate_limits.refresh_per_ip, which the rotation counts in
    its own Redis call."""
    try:
        claims = tokens.decode(refresh_token, "refresh")
    except ApiError:
        count_refresh(ip)  # refused unread, it counts all the same (and over the limit, answers 429)
        raise
    issued = tokens.issue_pair(claims["uid"], claims["amr"], claims["auth_time"], sid=claims["sid"],
                               device_id=claims.get("device_id"), generation=claims["gen"] + 1)
    rotation = session_store.rotate(claims["uid"], refresh_token, claims["gen"], issued,
                                    settings.auth.refresh_grace_seconds, session_ttl(), ip, limit=_refresh_limit(ip))
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
        session_store.revoke_all(user_id)
    else:
        session_store.revoke_session(user_id, sid)
    audit.record_now("logout_all" if everywhere else "logout", user_id, session=sid)


def current_snapshot(user_id: int) -> dict[str, Any] | None:
    """The user for an authenticated request whose snapshot fell out of Redis."""
    user = db.session.get(UserModel, user_id)
    if user is None or user.deleted_at is not None:
        return None
    snapshot = public_user(user)
    user_snapshot.save(user_id, snapshot, session_ttl())
    return snapshot
