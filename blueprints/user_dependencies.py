"""Who is calling: the Bearer access token turned into a UserContext (the seed's get_current_user)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any

from flask import g, request
from flask_babel import get_locale

import codes
from api import mark_authenticated
from config import settings
from errors import ApiError
from extensions import client_ip
from services import auth, tokens
from store import sessions

MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class UserContext:
    user_id: int
    token: str
    device_id: str | None
    sid: str
    user: dict[str, Any] = field(repr=False)
    order_snapshot: str = field(default="", repr=False)  # see login_required(order_arg=)

    # Looked up when asked for: most views need neither.
    @property
    def language(self) -> str:
        return str(get_locale())

    @property
    def ip(self) -> str:
        return client_ip()


def get_current_user(order_no: str | None = None) -> UserContext:
    """Verify the Bearer token's signature, expiry and type, then that Redis still holds it;
    in the same round trip, fetch the snapshot of the user's order order_no, if given."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(codes.AUTH_TOKEN_MISSING)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise ApiError(codes.AUTH_TOKEN_INVALID)
    claims = _access_claims(token)
    snapshots = sessions.check_access(claims["uid"], token, order_no)  # one round trip: liveness, user, order
    if snapshots is None:
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    snapshot, order_snapshot = snapshots
    user = json.loads(snapshot) if snapshot else auth.current_snapshot(claims["uid"])
    if user is None:  # the account is gone
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return UserContext(claims["uid"], token, claims.get("device_id"), claims["sid"], user, order_snapshot)


def _access_claims(token: str) -> dict[str, Any]:
    """tokens.decode(token, "access"), its verification remembered per token: a client presents
    the same access token request after request, and the signature check costs about a tenth of
    an authenticated request. Expiry is checked on every request, as PyJWT does (exp <= now)."""
    cfg = settings.auth
    claims = _verified_access_claims(token, cfg.jwt_secret, cfg.jwt_algorithm)
    if claims["exp"] <= time.time():
        raise ApiError(codes.AUTH_TOKEN_EXPIRED)
    return dict(claims)


@lru_cache(maxsize=2048)
def _verified_access_claims(token: str, secret: str, algorithm: str) -> dict[str, Any]:
    """Only verified tokens are remembered (an ApiError is not); the key and algorithm are part of
    the cache key, so an app with another secret verifies for itself."""
    return tokens.decode(token, "access")


def login_required(view: Callable | None = None, *, order_arg: str | None = None) -> Callable:
    """Run the view only for a valid, live access token; current_user() gives its context.

    order_arg names the view argument that holds an order_no: the order's snapshot then comes
    back with the token check (current_user().order_snapshot), at no extra round trip.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.user_context = get_current_user(kwargs[order_arg] if order_arg else None)
            g.user_id = g.user_context.user_id  # for the request log line
            return view(*args, **kwargs)

        mark_authenticated(wrapper)
        return wrapper

    return decorator(view) if view else decorator


def current_user() -> UserContext:
    return g.user_context
