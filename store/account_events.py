"""How often a kind of account event may be written, where an attacker sets the pace.

Keys (per email, TTL as noted):
    login_limited_noted:{<email digest>}   string  a rate-limited login of the email was noted (60 s)
"""

from __future__ import annotations

from extensions import redis_store
from store import keys

LIMITED_NOTED = keys.per_email("login_limited_noted")
NOTE_EVERY = 60  # seconds: a flood of refused logins is one event a minute in the history, not one each


def first_limited_login(email: str) -> bool:
    """True for the first rate-limited login of the email in NOTE_EVERY seconds: only that one is
    looked up and written, so a flood of refusals costs Redis, not the database."""
    return bool(redis_store.client.set(LIMITED_NOTED(email), "1", nx=True, ex=NOTE_EVERY))
