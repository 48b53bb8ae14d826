"""The user as the API shows it, so that an authenticated request needs no database query.

Keys:

    user:{uid}               string  JSON of the public user fields, TTL the longest session
                                     (auth.refresh_token_ttl + grace); rewritten at every login
"""

from __future__ import annotations

import json
from typing import Any

from extensions import redis_store
from store import keys

SNAPSHOT = keys.per_user("user")


def save(user_id: int, snapshot: dict[str, Any], ttl: int) -> None:
    redis_store.client.set(SNAPSHOT(user_id), json.dumps(snapshot), ex=ttl)


def load(user_id: int) -> dict[str, Any] | None:
    raw = redis_store.client.get(SNAPSHOT(user_id))
    return json.loads(raw) if raw else None
