"""Emailed sign-in codes: the pending code, its resend window and the wrong tries across codes.

Keys (``{email}`` is the email's digest tag, see store/keys.py):

    email_code:{email}           hash    {"hash": HMAC of the code, "attempts"}, TTL auth.email_code_ttl
    email_code_lock:{email}      string  the resend window, TTL auth.email_code_resend_seconds
    email_code_failures:{email}  string  counter of wrong codes across resends, TTL
                                         auth.email_code_failure_window from the first
"""

from __future__ import annotations

from extensions import redis_store
from store import keys, lua

CODE = keys.per_email("email_code")
RESEND_WINDOW = keys.per_email("email_code_lock")
FAILURES = keys.per_email("email_code_failures")

# KEYS: email_code, email_code_failures. ARGV: presented code hash, max attempts per code,
# max failures per window (across codes), window seconds.
_VERIFY_CODE = """
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures >= tonumber(ARGV[3]) then return 'blocked' end
local stored = redis.call('HGET', KEYS[1], 'hash')
if not stored then return 'expired' end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 'ok'
end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 'burned'
end
return 'wrong'
"""


def claim_slot(email: str, seconds: int) -> int:
    """Take the resend window for this email; returns 0, or the seconds left if already taken."""
    key = RESEND_WINDOW(email)
    if seconds <= 0 or redis_store.client.set(key, "1", nx=True, ex=seconds):
        return 0
    return max(1, redis_store.client.ttl(key))


def store(email: str, code_hash: str, ttl: int) -> None:
    pipe = redis_store.client.pipeline(transaction=True)
    pipe.delete(CODE(email))
    pipe.hset(CODE(email), mapping={"hash": code_hash, "attempts": 0})
    pipe.expire(CODE(email), ttl)
    pipe.execute()


def discard(email: str) -> None:
    """After a failed send: no code is pending and the resend window is open again."""
    redis_store.client.delete(CODE(email), RESEND_WINDOW(email))


def verify(email: str, code_hash: str, max_attempts: int, max_failures: int, window: int) -> str:
    """'ok' (consumed), 'wrong', 'burned' (too many tries, now gone), 'expired', or 'blocked'
    (max_failures wrong codes for this email within the window, whatever codes were sent)."""
    return lua.run(_VERIFY_CODE, [CODE(email), FAILURES(email)], code_hash, max_attempts, max_failures, window)
