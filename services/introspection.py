"""Token introspection (RFC 7662) for other services: is this access token live right now? The
same check as every request (signature, expiry, then Redis), so a logout shows at once, though
the JWT still verifies until it expires."""

from __future__ import annotations

import hmac
from typing import Any

from werkzeug.datastructures import Authorization

import codes
from config import settings
from errors import ApiError
from services import tokens
from store import sessions

CHALLENGE = {"WWW-Authenticate": 'Basic realm="introspection"'}


def authenticate(credentials: Authorization | None) -> str:
    """The asking service's id, from its HTTP Basic credentials (auth.introspection.clients)."""
    clients = settings.auth.introspection.clients
    expected = clients.get(credentials.username or "") if credentials and credentials.type == "basic" else None
    given = (credentials.password or "") if credentials else ""
    # compared even when the id is unknown, so that the answer's time does not tell ids apart
    if not hmac.compare_digest((expected or "\0" * 32).encode(), given.encode()) or expected is None:
        raise ApiError(codes.INTROSPECTION_CLIENT_INVALID, headers=CHALLENGE)
    return credentials.username


def introspect(token: str) -> dict[str, Any]:
    """{"active": false}, or the live token's claims."""
    try:
        claims = tokens.decode(token, "access")
    except ApiError:
        return {"active": False}
    if sessions.check_access(claims["uid"], token) is None:  # logged out, revoked, or ended
        return {"active": False}
    return {"active": True, "token_type": "access_token", "sub": claims["sub"], "sid": claims["sid"],
            "iat": claims["iat"], "exp": claims["exp"], "amr": claims["amr"], "auth_time": claims["auth_time"]}
