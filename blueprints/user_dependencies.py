"""Who is calling: the Bearer access token turned into a UserContext (the seed's get_current_user)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import g, request
from flask_babel import get_locale

import codes
from api import mark_authenticated
from errors import ApiError
from extensions import client_ip
from services import auth, token_store, tokens

MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class UserContext:
    user_id: int
    token: str
    device_id: str | None
    language: str
    ip: str
    sid: str
    user: dict[str, Any] = field(repr=False)


def get_current_user() -> UserContext:
    """Verify the Bearer token's signature, expiry and type, then that Redis still holds it."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(codes.AUTH_TOKEN_MISSING)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise ApiError(codes.AUTH_TOKEN_INVALID)
    claims = tokens.decode(token, "access")
    snapshot = token_store.check_access(claims["uid"], token)  # one round trip: liveness + user
    if snapshot is None:
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    user = json.loads(snapshot) if snapshot else auth.current_snapshot(claims["uid"])
    if user is None:  # the account is gone
        raise ApiError(codes.AUTH_TOKEN_REVOKED)
    return UserContext(claims["uid"], token, claims.get("device_id"), str(get_locale()), client_ip(),
                       claims["sid"], user)


def login_required(view: Callable) -> Callable:
    """Run the view only for a valid, live access token; current_user() gives its context."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.user_context = get_current_user()
        g.user_id = g.user_context.user_id  # for the request log line
        return view(*args, **kwargs)

    mark_authenticated(wrapper)
    return wrapper


def current_user() -> UserContext:
    return g.user_context
