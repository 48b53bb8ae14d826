"""Access and refresh tokens and the sessions they belong to: issue, rotate, check, revoke.

Keys (``{uid}`` is the user's hash tag, see store/keys.py):

    access_token:{uid}       zset  md5(access token) -> expiry (unix seconds)
    refresh_token:{uid}      zset  md5(refresh token) -> expiry
    session:{uid}            hash  sid -> {"c": created, "u": last login or refresh, "i": its ip,
                                   "d": device_id, "a": [access md5s, at most 16], "r": [live refresh
                                   md5s], "g": refresh generation, "p": md5 of the refresh token
                                   rotated last, "w": end of its grace window}
    refresh_token_next:{uid}:<sid>  string, TTL the grace window: the refresh token the session's
                                   last rotation made, handed to a racing tab instead of a new one

A rotation also counts the refresh against its address's limit (store/address_limits.py) in the
same script, so that a refresh is one Redis call; on a Redis Cluster the address's keys are in
another slot, and the limit is counted in a call of its own just before.

The three per-user keys carry the TTL of the longest session (auth.refresh_token_ttl + grace),
renewed on every write; expired members are trimmed on every write. A refresh token carries its
generation in the session (the gen claim), so reuse detection is one field per session however
long the chain: an older generation presented for a live session is a copy of a rotated token.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from extensions import redis_store
from store import address_limits, keys, lua, user_snapshot

ACCESS = keys.per_user("access_token")
REFRESH = keys.per_user("refresh_token")
SESSIONS = keys.per_user("session")
NEXT_REFRESH = keys.per_user("refresh_token_next", suffix="<sid>")


def fingerprint(token: str) -> str:
    """The seed's member format: md5 of the token (an identifier, not a secret)."""
    return hashlib.md5(token.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Issued:
    sid: str
    access_token: str
    access_exp: int
    refresh_token: str
    refresh_exp: int
    device_id: str | None = None


# Lua helpers shared by the scripts. KEYS order for per-user scripts:
# 1 access, 2 refresh, 3 session, 4 user snapshot, [5 successor of the presented token's session].
_COMMON = """
local MAX_ACCESS_PER_SESSION = 16
local function trim(now)
  for i = 1, 2 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) end
end
local function forget_session(sid)
  local raw = redis.call('HGET', KEYS[3], sid)
  if not raw then return end
  local s = cjson.decode(raw)
  for _, m in ipairs(s.a) do redis.call('ZREM', KEYS[1], m) end
  for _, m in ipairs(s.r) do redis.call('ZREM', KEYS[2], m) end
  redis.call('HDEL', KEYS[3], sid)
end
local function tracked(m)  -- a live refresh token
  return redis.call('ZSCORE', KEYS[2], m)
end
-- Record new tokens in a session (r_md5 '' adds an access token only), and who used it last from
-- where (device '' keeps the one recorded). The record keeps only members still tracked, newest
-- first, and at most MAX_ACCESS_PER_SESSION access tokens, so that neither it nor the work of
-- these scripts grows with the number of refreshes.
local function add_tokens(sid, now, a_md5, a_exp, r_md5, r_exp, device, ip)
  redis.call('ZADD', KEYS[1], a_exp, a_md5)
  if r_md5 ~= '' then redis.call('ZADD', KEYS[2], r_exp, r_md5) end
  local raw = redis.call('HGET', KEYS[3], sid)
  local s = raw and cjson.decode(raw) or {c = now, g = 0, a = {}, r = {}}
  local live_a, live_r = {a_md5}, {}
  if r_md5 ~= '' then live_r[1] = r_md5 end
  for _, m in ipairs(s.a) do
    if redis.call('ZSCORE', KEYS[1], m) then
      if #live_a < MAX_ACCESS_PER_SESSION then table.insert(live_a, m) else redis.call('ZREM', KEYS[1], m) end
    end
  end
  for _, m in ipairs(s.r) do if tracked(m) then table.insert(live_r, m) end end
  s.a, s.r, s.u, s.i = live_a, live_r, now, ip
  if device ~= '' then s.d = device end
  redis.call('HSET', KEYS[3], sid, cjson.encode(s))
end
local function touch(ttl)
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# ARGV: now, sid, access md5, access exp, refresh md5, refresh exp, max sessions, ttl, device, ip
_ISSUE = _COMMON + """
local now = tonumber(ARGV[1])
trim(now)
add_tokens(ARGV[2], now, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[9], ARGV[10])
-- Sessions whose refresh tokens all ended are gone; beyond the cap, the least recently used go.
local sessions = redis.call('HGETALL', KEYS[3])
local live = {}
for i = 1, #sessions, 2 do
  local s = cjson.decode(sessions[i + 1])
  local alive = false
  for _, m in ipairs(s.r) do
    if tracked(m) then alive = true; break end
  end
  if alive then table.insert(live, {sid = sessions[i], u = s.u or s.c}) else forget_session(sessions[i]) end
end
local cap = tonumber(ARGV[7])
if #live > cap then
  table.sort(live, function(x, y) return x.u < y.u end)
  for i = 1, #live - cap do forget_session(live[i].sid) end
end
touch(tonumber(ARGV[8]))
return #live
"""

# KEYS: 1-5, then the windows of the address's refresh limit, if counted here.
# ARGV: now, presented md5, presented generation, sid, access md5, access exp, refresh md5,
#       refresh exp, grace, ttl, the new refresh token, device, ip, then each window's amount
#       and seconds. Returns {outcome, successor refresh token or ''}, or {'limited', seconds}.
# A session's record holds its refresh generation "g" (the gen claim of its live refresh token),
# and, for the grace window, the previous token "p" and the window's end "w". So reuse detection
# is constant-size: a presented token of an older generation of a live session is a copy that
# was rotated already, however long ago.
_ROTATE = _COMMON + address_limits.MOVING_WINDOW + """
local now = tonumber(ARGV[1])
if #KEYS > 5 then
  local wait = over_limit(6, #KEYS - 5, 14, now)
  if wait then return {'limited', tostring(wait)} end
end
local md5, generation, sid, grace = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[9])
local raw = redis.call('HGET', KEYS[3], sid)
if not raw then return {'unknown', ''} end  -- never issued, logged out, evicted or expired
local s = cjson.decode(raw)
local current = s.g or 0
local live = redis.call('ZSCORE', KEYS[2], md5)
if generation == current and live and tonumber(live) > now then
  redis.call('ZREM', KEYS[2], md5)
  s.g, s.p, s.w = current + 1, md5, now + grace
  redis.call('HSET', KEYS[3], sid, cjson.encode(s))
  if grace > 0 then redis.call('SET', KEYS[5], ARGV[11], 'EX', grace) end
  trim(now)
  add_tokens(sid, now, ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[12], ARGV[13])
  touch(tonumber(ARGV[10]))
  return {'rotated', ''}
end
local successor = md5 == s.p and now < (s.w or 0) and redis.call('GET', KEYS[5])
if successor then
  -- A racing tab: a new access token, and the refresh token the first rotation made, so that
  -- the session still has one refresh chain and a thief's copy is caught at its next use.
  trim(now)
  add_tokens(sid, now, ARGV[5], ARGV[6], '', 0, ARGV[12], ARGV[13])
  touch(tonumber(ARGV[10]))
  return {'grace', successor}
end
if generation < current then
  -- Theft: every session ends, and the family is forgotten so that replaying the same
  -- stolen token cannot log the user out again and again.
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
  return {'reuse', ''}
end
return {'unknown', ''}
"""

# KEYS: access, user snapshot, then the keys to read, then the keys to delete (only what it touches:
# every authenticated request sends them). ARGV: md5, now, how many keys to read. Returns false
# when the token is not live, else the snapshot and what was read ('' if missing).
_CHECK_ACCESS = """
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then return false end
local reads = tonumber(ARGV[3])
local found = {redis.call('GET', KEYS[2]) or '', reads > 0 and redis.call('GET', KEYS[3]) or ''}
for i = 3 + reads, #KEYS do redis.call('DEL', KEYS[i]) end
return found
"""

# ARGV: sid
_REVOKE_SESSION = _COMMON + """
forget_session(ARGV[1])
return 1
"""

# ARGV: the sid to keep
_REVOKE_OTHERS = _COMMON + """
for _, sid in ipairs(redis.call('HKEYS', KEYS[3])) do
  if sid ~= ARGV[1] then forget_session(sid) end
end
return 1
"""

# KEYS 1-4. ARGV: now, sid, the generation read before, access md5, access exp, refresh md5, refresh
# exp, ttl, device, ip. Returns 1, or 0 when the session ended or rotated meanwhile. The session's
# refresh token is replaced by the new one, one generation on, with no grace window: the old one,
# presented later, is a copy (reuse), since the caller holds the new pair.
_RENEW = _COMMON + """
local now = tonumber(ARGV[1])
local raw = redis.call('HGET', KEYS[3], ARGV[2])
if not raw then return 0 end
local s = cjson.decode(raw)
if (s.g or 0) ~= tonumber(ARGV[3]) then return 0 end
for _, m in ipairs(s.r) do redis.call('ZREM', KEYS[2], m) end
s.r, s.g, s.p, s.w = {}, (s.g or 0) + 1, nil, nil
redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(s))
trim(now)
add_tokens(ARGV[2], now, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[9], ARGV[10])
touch(tonumber(ARGV[8]))
return 1
"""



def _keys(user_id: int) -> list[str]:
    """KEYS 1-4 of the scripts above."""
    return [ACCESS(user_id), REFRESH(user_id), SESSIONS(user_id), user_snapshot.SNAPSHOT(user_id)]


def store_issued(user_id: int, issued: Issued, max_sessions: int, ttl: int, ip: str = "") -> None:
    """Track a new login's pair (ip: where it came from); evict the oldest sessions beyond max_sessions."""
    lua.run(_ISSUE, _keys(user_id), f"{time.time():.4f}", issued.sid,
            fingerprint(issued.access_token), issued.access_exp,
            fingerprint(issued.refresh_token), issued.refresh_exp, max_sessions, ttl,
            issued.device_id or "", ip)


class Rotation(NamedTuple):
    outcome: str  # rotated, grace, reuse, unknown or limited
    refresh_token: str | None = None  # to hand out, when rotated or grace
    retry_after: int = 0  # seconds, when limited


def rotate(user_id: int, presented: str, generation: int, issued: Issued, grace: int,
           ttl: int, ip: str = "", limit: address_limits.Windows | None = None) -> Rotation:
    """Swap a refresh token (of refresh generation `generation`) for a new pair, atomically,
    after counting it against limit, its address's refresh limit, if given.

    Outcomes: 'rotated' (first use: the issued pair stands), 'grace' (a repeat inside
    the grace window: the issued access token and the first rotation's refresh
    token), 'reuse' (an older generation of a live session: every session was revoked),
    'unknown' (never issued, logged out or expired: refused) or 'limited' (over the
    limit: nothing was done, nor counted).
    """
    windows = address_limits.Windows([], [])  # counted in the rotation's script, if any
    if limit is not None and redis_store.cluster:  # the address's keys are in another slot
        wait = address_limits.hit(limit)
        if wait:
            return Rotation("limited", retry_after=wait)
    elif limit is not None:
        windows = limit
    outcome, value = lua.run(_ROTATE, [*_keys(user_id), NEXT_REFRESH(user_id, issued.sid), *windows.keys],
                             address_limits.now(), fingerprint(presented), generation,
                             issued.sid, fingerprint(issued.access_token), issued.access_exp,
                             fingerprint(issued.refresh_token), issued.refresh_exp, grace, ttl,
                             issued.refresh_token, issued.device_id or "", ip, *windows.args)
    if outcome == "limited":
        return Rotation(outcome, retry_after=int(value))
    return Rotation(outcome, (value or issued.refresh_token) if outcome in ("rotated", "grace") else None)


def check_access(user_id: int, token: str, also: str | None = None, drop: str | None = None) -> tuple[str, str] | None:
    """One round trip: None if the access token is not live, else (the user's snapshot, the value
    of also, another key of the same user that the caller wants), '' for one absent or not asked
    for; and, when the token is live, delete drop, a key of the same user that the caller is about
    to make stale."""
    wanted = [ACCESS(user_id), user_snapshot.SNAPSHOT(user_id)]
    if also:
        wanted.append(also)
    if drop:
        wanted.append(drop)
    result = lua.run(_CHECK_ACCESS, wanted, fingerprint(token), time.time(), 1 if also else 0)
    return None if result is None else tuple(result)


def revoke_session(user_id: int, sid: str) -> None:
    lua.run(_REVOKE_SESSION, _keys(user_id), sid)


def revoke_others(user_id: int, keep_sid: str) -> None:
    """End every session of the user's but keep_sid."""
    lua.run(_REVOKE_OTHERS, _keys(user_id), keep_sid)


def generation(user_id: int, sid: str) -> int | None:
    """The refresh generation of a live session's record; None when there is none."""
    raw = redis_store.client.hget(SESSIONS(user_id), sid)
    return None if raw is None else json.loads(raw).get("g", 0)


def renew(user_id: int, issued: Issued, previous_generation: int, ttl: int, ip: str = "") -> bool:
    """Put a new pair (its refresh token of previous_generation + 1) in place of the session's
    refresh token, keeping the session; False when it ended or rotated since the generation was read."""
    return bool(lua.run(_RENEW, _keys(user_id), f"{time.time():.4f}", issued.sid, previous_generation,
                        fingerprint(issued.access_token), issued.access_exp, fingerprint(issued.refresh_token),
                        issued.refresh_exp, ttl, issued.device_id or "", ip))


def revoke_all(user_id: int) -> None:
    """Log the user out everywhere. Ended sessions are forgotten with their generations: an old
    token is then merely unknown, and replaying it cannot end the user's next sessions."""
    redis_store.client.delete(ACCESS(user_id), REFRESH(user_id), SESSIONS(user_id))


def forget_user(user_id: int) -> None:
    """Revoke everything and drop every other key of the user's too (the snapshot, cached orders,
    spent two-factor steps), for an account that is going away."""
    redis_store.client.delete(*_keys(user_id), *keys.user_keys(user_id))


def live_sessions(user_id: int) -> list[dict[str, Any]]:
    """The sessions that still hold a live refresh token, newest use first: {"sid", "device_id",
    "created_at", "last_used_at" (unix seconds: the login, or the last refresh), "ip" (of that use)}."""
    client, refresh, now = redis_store.client, REFRESH(user_id), time.time()
    live = []
    for sid, raw in client.hgetall(SESSIONS(user_id)).items():
        record = json.loads(raw)
        if any((client.zscore(refresh, m) or 0) > now for m in record["r"]):
            live.append({"sid": sid, "device_id": record.get("d"), "created_at": record["c"],
                         "last_used_at": record.get("u", record["c"]), "ip": record.get("i") or None})
    return sorted(live, key=lambda session: session["last_used_at"], reverse=True)


def tracked(user_id: int) -> dict[str, dict[str, float]]:
    """Every tracked member and its score, by set name (for operators and tests)."""
    client = redis_store.client
    return {key.name: dict(client.zrange(key(user_id), 0, -1, withscores=True)) for key in (ACCESS, REFRESH)}


def session_records(user_id: int) -> dict[str, dict]:
    """Each session's record by sid (for operators and tests)."""
    return {sid: json.loads(raw) for sid, raw in redis_store.client.hgetall(SESSIONS(user_id)).items()}
