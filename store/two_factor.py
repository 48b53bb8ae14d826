"""What makes a second factor usable once: the challenge tokens spent, and the TOTP steps used.

Keys (per user, TTL as noted):
    two_factor_token:{<user_id>}:<jti>   string  a challenge token that was used (its lifetime)
    two_factor_step:{<user_id>}:<step>   string  a TOTP time step whose code was accepted (3 steps)
"""

from __future__ import annotations

from extensions import redis_store
from store import keys

SPENT_TOKEN = keys.per_user("two_factor_token", suffix="<jti>")
USED_STEP = keys.per_user("two_factor_step", suffix="<step>")


def spend_token(user_id: int, jti: str, ttl: int) -> bool:
    """True the first time only: a challenge token answers once."""
    return bool(redis_store.client.set(SPENT_TOKEN(user_id, jti), "1", nx=True, ex=max(1, ttl)))


def use_step(user_id: int, step: int, ttl: int) -> bool:
    """True the first time a code of this time step is accepted: a code cannot be replayed in its window."""
    return bool(redis_store.client.set(USED_STEP(user_id, str(step)), "1", nx=True, ex=ttl))
