"""Wrong tries counted for the lockouts. Passwords by email: the same key and the same step
whether the email has an account or not, so that the answers cannot tell the two apart. Second
factors (an authenticator's or a recovery code) by user, apart from passwords: only someone who
passed a first factor can guess them, so no anonymous run of wrong passwords locks the owner out
of the second step, and the mailbox proof that lifts a password lockout lifts nothing here.

Keys (``{email}`` is the email's digest tag, ``{uid}`` the user's, see store/keys.py):

    login_failures:{email}         string  counter of wrong passwords, TTL auth.lockout_minutes from
                                           the first, and again from the one that reaches
                                           auth.max_failed_logins (which locks the email)
    second_factor_failures:{uid}   string  counter of wrong second-factor codes, the same rule
"""

from __future__ import annotations

from extensions import redis_store
from store import keys, lua

FAILURES = keys.per_email("login_failures")
SECOND_FACTOR = keys.per_user("second_factor_failures")

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
    """Count a wrong password; returns 0, or the seconds left if the email was locked already."""
    return _record(FAILURES(email), max_failures, lock_ms)


def seconds_locked(email: str, max_failures: int) -> int:
    """Seconds the email stays locked against passwords; 0 when it is not."""
    return _seconds_locked(FAILURES(email), max_failures)


def record_second_factor(user_id: int, max_failures: int, lock_ms: int) -> int:
    """Count a wrong second-factor code; returns 0, or the seconds left if the user was locked already."""
    return _record(SECOND_FACTOR(user_id), max_failures, lock_ms)


def second_factor_seconds_locked(user_id: int, max_failures: int) -> int:
    """Seconds the user's second step stays locked; 0 when it is not."""
    return _seconds_locked(SECOND_FACTOR(user_id), max_failures)


def clear_second_factor(user_id: int) -> None:
    redis_store.client.delete(SECOND_FACTOR(user_id))


def _record(key: str, max_failures: int, lock_ms: int) -> int:
    return _seconds(lua.run(_LOGIN_FAILURE, [key], max_failures, lock_ms))


def _seconds_locked(key: str, max_failures: int) -> int:
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    count, ms_left = pipe.execute()
    return max(1, _seconds(ms_left)) if count and int(count) >= max_failures else 0


def _seconds(ms: int) -> int:
    """Rounded up, as Retry-After needs."""
    return -(-ms // 1000)


def clear(email: str) -> None:
    redis_store.client.delete(FAILURES(email))
