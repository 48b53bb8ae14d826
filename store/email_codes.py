"""Emailed codes, for a purpose ("login": sign in; "reset": set a new password; "register": confirm
a registration): the pending code, its resend window, and its wrong tries.

Wrong tries count per code: a code dies after auth.email_code_max_attempts of them, and a code
mailed later starts fresh. Nothing counts across codes, so that no one who requests codes for an
address and guesses wrong can keep its owner from signing in with the next code mailed.

Keys (``{email}`` is the email's digest tag, see store/keys.py):

    email_code:{email}           hash    the login code: {"hash": HMAC of the code, "attempts": wrong
                                         tries of this code}, TTL
                                         auth.email_code_ttl
    reset_code:{email}           hash    the reset code, the same
    register_code:{email}        hash    the registration's code, the same, and while it lives its
                                         "password_hash" and "nickname" (the account it would make)
    email_code_lock:{email}      string  the login code's resend window, TTL auth.email_code_resend_seconds
    reset_code_lock:{email}      string  the reset code's, the same
    register_code_lock:{email}   string  the registration's, the same
"""

from __future__ import annotations

from extensions import redis_store
from store import keys, lua

PURPOSES = ("login", "reset", "register")
CODE = {purpose: keys.per_email("email_code" if purpose == "login" else f"{purpose}_code") for purpose in PURPOSES}
RESEND_WINDOW = {purpose: keys.per_email("email_code_lock" if purpose == "login" else f"{purpose}_code_lock")
                 for purpose in PURPOSES}

# KEYS: the code's key. ARGV: presented code hash, max attempts per code.
_VERIFY_CODE = """
local stored = redis.call('HGET', KEYS[1], 'hash')
if not stored then return 'expired' end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 'ok'
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 'burned'
end
return 'wrong'
"""


def claim_slot(email: str, seconds: int, purpose: str = "login") -> int:
    """Take the resend window for this email; returns 0, or the seconds left if already taken."""
    key = RESEND_WINDOW[purpose](email)
    if seconds <= 0 or redis_store.client.set(key, "1", nx=True, ex=seconds):
        return 0
    return max(1, redis_store.client.ttl(key))


def store(email: str, code_hash: str, ttl: int, purpose: str = "login", extra: dict[str, str] | None = None) -> None:
    """Replace the pending code of purpose (and whatever extra fields it held)."""
    key = CODE[purpose](email)
    pipe = redis_store.client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"hash": code_hash, "attempts": 0, **(extra or {})})
    pipe.expire(key, ttl)
    pipe.execute()


def pending_fields(email: str, purpose: str) -> dict[str, str]:
    """The extra fields stored with the pending code (read them before verify consumes it)."""
    return redis_store.client.hgetall(CODE[purpose](email))


def discard(email: str, purpose: str = "login") -> None:
    """After a failed send: no code is pending and the resend window is open again."""
    redis_store.client.delete(CODE[purpose](email), RESEND_WINDOW[purpose](email))


def verify(email: str, code_hash: str, max_attempts: int, purpose: str = "login") -> str:
    """'ok' (consumed), 'wrong', 'burned' (its max_attempts-th wrong try: now gone) or 'expired'
    (none pending: never sent, used, burned or past its TTL)."""
    return lua.run(_VERIFY_CODE, [CODE[purpose](email)], code_hash, max_attempts)
