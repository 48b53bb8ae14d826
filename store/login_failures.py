"""Wrong password logins counted by email, for the lockout: the same key and the same step
whether the email has an account or not, so that the answers cannot tell the two apart.

Keys (``{email}`` is the email's digest tag, see store/keys.py):

    login_failures:{email}   string  counter of wrong password logins, TTL auth.lockout_minutes from
                                     the first, and again from the one that reaches
                                     auth.max_failed_logins (which locks the email)
"""

from __future__ import annotations

from extensions import redis_store
from store import keys, lua

FAILURES = keys.per_email("login_failures")

# KEYS: login_failures. ARGV: max failures, lock milliseconds. Counts one wrong login, unless the
# email is locked already: then returns the milliseconds left. Failures count for the lock's length
# after the first; the one that reaches max starts the lock.
_LOGIN_FAILURE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return math.max(1, redis.call('PTTL', KEYS[1])) end
count = redis.call('INCR', KEYS[1])
if count == 1 or count == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def record(email: str, max_failures: int, lock_ms: int) -> int:
    """Count a wrong login; returns 0, or the seconds left if the email was locked already."""
    return _seconds(lua.run(_LOGIN_FAILURE, [FAILURES(email)], max_failures, lock_ms))


def seconds_locked(email: str, max_failures: int) -> int:
    """Seconds the email stays locked against password logins; 0 when it is not."""
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.get(FAILURES(email))
    pipe.pttl(FAILURES(email))
    count, ms_left = pipe.execute()
    return max(1, _seconds(ms_left)) if count and int(count) >= max_failures else 0


def _seconds(ms: int) -> int:
    """Rounded up, as Retry-After needs."""
    return -(-ms // 1000)


def clear(email: str) -> None:
    redis_store.client.delete(FAILURES(email))
