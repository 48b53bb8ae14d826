"""How often a kind of account event may be written, where an attacker sets the pace.

Keys (per user, TTL as noted):
    login_limited_noted:{<user_id>}   string  a rate-limited login was written to the history (60 s)
"""

from __future__ import annotations

from extensions import redis_store
from store import keys

LIMITED_NOTED = keys.per_user("login_limited_noted")
NOTE_EVERY = 60  # seconds: a flood of refused logins is one event a minute in the history, not one each


def first_limited_login(user_id: int) -> bool:
    """True for the first rate-limited login of the user in NOTE_EVERY seconds."""
    return bool(redis_store.client.set(LIMITED_NOTED(user_id), "1", nx=True, ex=NOTE_EVERY))
