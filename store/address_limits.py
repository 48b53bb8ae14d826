"""Rate limits per client address that the service counts itself: the refresh limit
(auth.rate_limits.refresh_per_ip), counted inside the rotation's own script so that a refresh is
one Redis call (store/sessions.py). Flask-Limiter counts every other limit, under LIMITER_PREFIX.

The window is Flask-Limiter's moving window (the limits package's acquire_moving_window): a list
of the hit times, newest first, at most the limit long. A hit is refused while the oldest of them
is still inside the window, and then records nothing; the Retry-After is when that one leaves it.
A limit of several windows ("10/second;120/minute") is refused by any of them, and a hit is
recorded in all of them only when none refuses.

Keys:

    refresh_limit:{address}:<amount>/<seconds>   list  hit times (unix seconds), newest first, TTL
                                                     the window; {address}: the address's digest
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

from limits import parse_many

from store import keys, lua

REFRESH = keys.per_address("refresh_limit", suffix="<amount>/<seconds>")

# A Lua function for the scripts that count a hit: KEYS[first ...] are the windows' lists, and
# ARGV[arg ...] their amounts and lengths in seconds, two by two; ARGV[1] is now (see now()), the
# time a hit records. Returns the seconds to wait when refused (a hit is then recorded nowhere),
# else false (a hit is recorded in every window).
MOVING_WINDOW = """
local function over_limit(first, count, arg, now)
  for i = 0, count - 1 do
    local amount, seconds = tonumber(ARGV[arg + 2 * i]), tonumber(ARGV[arg + 2 * i + 1])
    local oldest = redis.call('LINDEX', KEYS[first + i], amount - 1)
    if oldest and tonumber(oldest) >= now - seconds then
      return math.max(1, math.ceil(tonumber(oldest) + seconds - now))
    end
  end
  for i = 0, count - 1 do
    local amount, seconds = tonumber(ARGV[arg + 2 * i]), tonumber(ARGV[arg + 2 * i + 1])
    redis.call('LPUSH', KEYS[first + i], ARGV[1])
    redis.call('LTRIM', KEYS[first + i], 0, amount - 1)
    redis.call('EXPIRE', KEYS[first + i], seconds)
  end
  return false
end
"""

# KEYS: the windows' lists. ARGV: now, then each window's amount and seconds.
_HIT = MOVING_WINDOW + """
return over_limit(1, #KEYS, 2, tonumber(ARGV[1])) or 0
"""


@dataclass(frozen=True)
class Windows:
    """One address's windows of one limit, as a script takes them: its keys and its arguments."""

    keys: list[str]
    args: list[int]


@lru_cache(maxsize=32)
def _parsed(limit: str) -> tuple[tuple[int, int], ...]:
    """(amount, seconds) of each window of a limit string, read as Flask-Limiter reads it."""
    return tuple((item.amount, item.get_expiry()) for item in parse_many(limit))


def refresh_windows(address: str, limit: str) -> Windows:
    windows = _parsed(limit)
    return Windows([REFRESH(address, f"{amount}/{seconds}") for amount, seconds in windows],
                   [value for window in windows for value in window])


def now() -> str:
    """ARGV[1] of the scripts that count: the time of the hit."""
    return f"{time.time():.4f}"


def hit(windows: Windows) -> int:
    """Count one hit on its own (not in a rotation): 0, or the seconds to wait when refused."""
    return int(lua.run(_HIT, windows.keys, now(), *windows.args))
