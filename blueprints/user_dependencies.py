"""Who is calling: the Bearer access token turned into a UserContext (the seed's get_current_user)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any

from flask import g, request

import codes
from api import mark_authenticated, mark_step_up
from errors import ApiError
from services import keyset, tokens
from services.signin import policy
from services.signin import sessions as signin_sessions
from store import sessions

MAX_TOKEN_LENGTH = 4096


# A key of the caller's that a view wants read (or deleted) with the token check, built from the
# user id and the view's arguments (the order module's status snapshot, say).
KeyOf = Callable[[int, dict[str, Any]], str]


@dataclass(frozen=True)
class UserContext:
    user_id: int
    token: str
    device_id: str | None
    sid: str
    amr: list[str]  # what the sign-in the token descends from proved, and when (services/signin/policy.py)
    auth_time: int
    user: dict[str, Any] = field(repr=False)
    prefetched: str = field(default="", repr=False)  # see login_required(prefetch=)


def get_current_user(prefetch: KeyOf | None = None, view_args: dict[str, Any] | None = None,
                     drops: KeyOf | None = None) -> UserContext:
    """Verify the Bearer token's signature, expiry and type, then that Redis still holds it;
    in the same round trip, read the key prefetch names and delete the key drops names, if given."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(codes.AUTH_TOKEN_MISSING)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise ApiError(codes.AUTH_TOKEN_INVALID)
    claims = _access_claims(token)
    also = prefetch(claims["uid"], view_args or {}) if prefetch else None
    drop = drops(claims["uid"], view_args or {}) if drops else None
    snapshots = sessions.check_access(claims["uid"], token, also, drop)  # one round trip for all of them
    if snapshots is None:
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    snapshot, prefetched = snapshots
    user = json.loads(snapshot) if snapshot else signin_sessions.current_snapshot(claims["uid"])
    if user is None:  # the account is gone
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return UserContext(claims["uid"], token, claims.get("device_id"), claims["sid"], claims["amr"],
                       claims["auth_time"], user, prefetched)


def _access_claims(token: str) -> dict[str, Any]:
    """tokens.decode(token, "access"), its verification remembered per token: a client presents
    the same access token request after request, and the signature check costs about a tenth of
    an authenticated request. Expiry is checked on every request, as PyJWT does (exp <= now)."""
    claims = _verified_access_claims(token, keyset.current().serial)
    if claims["exp"] <= time.time():
        raise ApiError(codes.AUTH_TOKEN_EXPIRED)
    return dict(claims)


@lru_cache(maxsize=2048)
def _verified_access_claims(token: str, keyset_serial: int) -> dict[str, Any]:
    """Only verified tokens are remembered (an ApiError is not); the keyset is part of the cache
    key, so an app with other keys (another secret, a reloaded keyset) verifies for itself."""
    return tokens.decode(token, "access")


def login_required(view: Callable | None = None, *, prefetch: KeyOf | None = None,
                   drops: KeyOf | None = None, step_up: bool = False) -> Callable:
    """Run the view only for a valid, live access token; current_user() gives its context.

    prefetch names a key of the caller's that the view reads anyway: it comes back with the token
    check (current_user().prefetched), at no extra round trip. drops names one that the view is
    about to make stale: it is deleted in that same round trip, before the view runs. step_up asks
    for a recent proof as well (policy.require_recent): for a sensitive change.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.user_context = ctx = get_current_user(prefetch, kwargs, drops)
            g.user_id = ctx.user_id  # for the request log line
            if step_up:
                policy.require_recent(ctx.user_id, ctx.amr, ctx.auth_time)
            return view(*args, **kwargs)

        mark_authenticated(wrapper)
        if step_up:
            mark_step_up(wrapper)
        return wrapper

    return decorator(view) if view else decorator


def current_user() -> UserContext:
    return g.user_context
