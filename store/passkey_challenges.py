"""The challenges of passkey ceremonies: each kept 5 minutes and answered once.

Keys (``{uid}`` the user's tag, ``{flow}`` a digest of an anonymous ceremony's id):

    passkey_registration:{uid}          string  the challenge of the user's pending registration
    passkey_sign_in:{flow}              string  the challenge of an anonymous sign-in (no user yet)
    passkey_second_step:{uid}:<jti>     string  the challenge of a two-factor step, bound to the
                                                sign-in challenge (its jti) it completes
"""

from __future__ import annotations

from extensions import redis_store
from store import keys

TTL = 300  # seconds

REGISTRATION = keys.per_user("passkey_registration")
SIGN_IN = keys.per_flow("passkey_sign_in")
SECOND_STEP = keys.per_user("passkey_second_step", suffix="<jti>")


def keep(key: str, challenge: bytes) -> None:
    redis_store.client.set(key, challenge.hex(), ex=TTL)


def take(key: str) -> bytes | None:
    """The challenge kept under key, once: it is gone after this read."""
    value = redis_store.client.getdel(key)
    return bytes.fromhex(value) if value else None
