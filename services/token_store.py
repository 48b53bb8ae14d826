"""The whole Redis layout: every key, TTL, Lua script and token operation.

Per user (``{uid}`` is a literal hash tag, so one user's keys share a Redis
Cluster slot and every script below touches one slot only):

    access_token:{uid}       zset  md5(access token)  -> expiry (unix seconds)
    refresh_token:{uid}      zset  md5(refresh token) -> expiry
    refresh_token_old:{uid}  zset  md5(rotated refresh token) -> end of its grace window
    refresh_token_used:{uid} zset  md5(rotated refresh token) -> the token's own expiry,
                                   remembered so that a late reuse is recognised as theft
    session:{uid}            hash  sid -> {"c": created, "a": [access md5s], "r": [refresh md5s]}
    user:{uid}               string  JSON snapshot of the public user fields, so that an
                                   authenticated request needs no database query

Per email (``{email}`` again a hash tag):

    email_code:{email}       hash  {"hash", "attempts"}, TTL auth.email_code_ttl
    email_code_lock:{email}  string, TTL auth.email_code_resend_seconds

Expired members are trimmed on every write and every key carries a TTL.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from extensions import redis_store

# Lua helpers shared by the scripts. KEYS order for per-user scripts:
# 1 access, 2 refresh, 3 old, 4 used, 5 session, 6 user snapshot.
_COMMON = """
local function trim(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
end
local function forget_session(sid)
  local raw = redis.call('HGET', KEYS[5], sid)
  if not raw then return end
  local s = cjson.decode(raw)
  for _, m in ipairs(s.a) do redis.call('ZREM', KEYS[1], m) end
  for _, m in ipairs(s.r) do redis.call('ZREM', KEYS[2], m); redis.call('ZREM', KEYS[3], m) end
  redis.call('HDEL', KEYS[5], sid)
end
local function add_tokens(sid, now, a_md5, a_exp, r_md5, r_exp)
  redis.call('ZADD', KEYS[1], a_exp, a_md5)
  redis.call('ZADD', KEYS[2], r_exp, r_md5)
  local raw = redis.call('HGET', KEYS[5], sid)
  local s = raw and cjson.decode(raw) or {c = now, a = {}, r = {}}
  -- keep only the members still live, so a long session's record stays small
  local live_a, live_r = {a_md5}, {r_md5}
  for _, m in ipairs(s.a) do if redis.call('ZSCORE', KEYS[1], m) then table.insert(live_a, m) end end
  for _, m in ipairs(s.r) do
    if redis.call('ZSCORE', KEYS[2], m) or redis.call('ZSCORE', KEYS[3], m) then table.insert(live_r, m) end
  end
  s.a, s.r = live_a, live_r
  redis.call('HSET', KEYS[5], sid, cjson.encode(s))
end
local function touch(ttl)
  for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# ARGV: now, sid, access md5, access exp, refresh md5, refresh exp, max sessions, ttl
_ISSUE = _COMMON + """
local now = tonumber(ARGV[1])
trim(now)
add_tokens(ARGV[2], now, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local sessions = redis.call('HGETALL', KEYS[5])
local count = #sessions / 2
if count > tonumber(ARGV[7]) then
  local order = {}
  for i = 1, #sessions, 2 do table.insert(order, {sid = sessions[i], c = cjson.decode(sessions[i + 1]).c}) end
  table.sort(order, function(x, y) return x.c < y.c end)
  for i = 1, count - tonumber(ARGV[7]) do forget_session(order[i].sid) end
end
touch(tonumber(ARGV[8]))
return count
"""

# ARGV: now, presented md5, presented exp, sid, access md5, access exp, refresh md5, refresh exp, grace, ttl
_ROTATE = _COMMON + """
local now = tonumber(ARGV[1])
local md5 = ARGV[2]
local live = redis.call('ZSCORE', KEYS[2], md5)
local outcome
if live and tonumber(live) > now then
  outcome = 'rotated'
  redis.call('ZREM', KEYS[2], md5)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]), md5)
  redis.call('ZADD', KEYS[4], ARGV[3], md5)
else
  local grace = redis.call('ZSCORE', KEYS[3], md5)
  if grace and tonumber(grace) > now then
    outcome = 'grace'
  else
    local used = redis.call('ZSCORE', KEYS[4], md5)
    if used and tonumber(used) > now then
      redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
      return 'reuse'
    end
    return 'unknown'
  end
end
trim(now)
add_tokens(ARGV[4], now, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
touch(tonumber(ARGV[10]))
return outcome
"""

# ARGV: md5, now. Returns false when the token is not live, else the snapshot ('' if missing).
_CHECK_ACCESS = """
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then return false end
return redis.call('GET', KEYS[6]) or ''
"""

# ARGV: sid
_REVOKE_SESSION = _COMMON + """
forget_session(ARGV[1])
return 1
"""

# ARGV: presented code hash, max attempts. KEYS: email_code
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


def _user_keys(user_id: int) -> list[str]:
    tag = f"{{{user_id}}}"
    return [redis_store.key(name + tag) for name in (
        "access_token:", "refresh_token:", "refresh_token_old:", "refresh_token_used:", "session:", "user:")]


def _email_key(name: str, email: str) -> str:
    return redis_store.key(f"{name}:{{{email}}}")


def _run(script: str, keys: list[str], *args: Any) -> Any:
    scripts = redis_store.scripts
    if script not in scripts:
        scripts[script] = redis_store.client.register_script(script)
    return scripts[script](keys=keys, args=list(args))


def store_issued(user_id: int, issued: Issued, max_sessions: int, ttl: int) -> None:
    """Track a new login's pair; evict the oldest sessions beyond max_sessions."""
    _run(_ISSUE, _user_keys(user_id), f"{time.time():.4f}", issued.sid,
         fingerprint(issued.access_token), issued.access_exp,
         fingerprint(issued.refresh_token), issued.refresh_exp, max_sessions, ttl)


def rotate(user_id: int, presented: str, presented_exp: int, issued: Issued, grace: int, ttl: int) -> str:
    """Swap a refresh token for a new pair, atomically.

    Returns 'rotated' (first use), 'grace' (a repeat inside the grace window, also
    served), 'reuse' (a rotated token after its window: every session was revoked)
    or 'unknown' (never issued, logged out or expired: refused).
    """
    return _run(_ROTATE, _user_keys(user_id), int(time.time()), fingerprint(presented), presented_exp,
                issued.sid, fingerprint(issued.access_token), issued.access_exp,
                fingerprint(issued.refresh_token), issued.refresh_exp, grace, ttl)


def check_access(user_id: int, token: str) -> str | None:
    """One round trip: None if the access token is not live, else the user snapshot ('' when absent)."""
    result = _run(_CHECK_ACCESS, _user_keys(user_id), fingerprint(token), time.time())
    return None if result is None else result


def revoke_session(user_id: int, sid: str) -> None:
    _run(_REVOKE_SESSION, _user_keys(user_id), sid)


def revoke_all(user_id: int) -> None:
    """Log the user out everywhere; the reuse record stays, so old tokens still read as theft."""
    access, refresh, old, _, session, _ = _user_keys(user_id)
    redis_store.client.delete(access, refresh, old, session)


def forget_user(user_id: int) -> None:
    """Revoke everything and drop the snapshot, for an account that is going away."""
    access, refresh, old, _, session, snapshot = _user_keys(user_id)
    redis_store.client.delete(access, refresh, old, session, snapshot)


def live_sessions(user_id: int) -> int:
    """Sessions that still hold a live refresh token."""
    _, refresh, old, _, session, _ = _user_keys(user_id)
    now = time.time()
    count = 0
    for raw in redis_store.client.hvals(session):
        members = json.loads(raw)["r"]
        if any((redis_store.client.zscore(refresh, m) or 0) > now for m in members):
            count += 1
    return count


def tracked(user_id: int) -> dict[str, dict[str, float]]:
    """Every tracked member and its score, by set name (for operators and tests)."""
    names = ("access_token", "refresh_token", "refresh_token_old", "refresh_token_used")
    return {name: dict(redis_store.client.zrange(key, 0, -1, withscores=True))
            for name, key in zip(names, _user_keys(user_id)[:4], strict=True)}


def save_user_snapshot(user_id: int, snapshot: dict[str, Any], ttl: int) -> None:
    redis_store.client.set(_user_keys(user_id)[5], json.dumps(snapshot), ex=ttl)


def load_user_snapshot(user_id: int) -> dict[str, Any] | None:
    raw = redis_store.client.get(_user_keys(user_id)[5])
    return json.loads(raw) if raw else None


def claim_code_slot(email: str, seconds: int) -> int:
    """Take the resend window for this email; returns 0, or the seconds left if already taken."""
    key = _email_key("email_code_lock", email)
    if seconds <= 0 or redis_store.client.set(key, "1", nx=True, ex=seconds):
        return 0
    return max(1, redis_store.client.ttl(key))


def store_code(email: str, code_hash: str, ttl: int) -> None:
    key = _email_key("email_code", email)
    pipe = redis_store.client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"hash": code_hash, "attempts": 0})
    pipe.expire(key, ttl)
    pipe.execute()


def discard_code(email: str) -> None:
    """After a failed send: no code is pending and the resend window is open again."""
    redis_store.client.delete(_email_key("email_code", email), _email_key("email_code_lock", email))


def verify_code(email: str, code_hash: str, max_attempts: int) -> str:
    """'ok' (consumed), 'wrong', 'burned' (too many tries, now gone) or 'expired'."""
    return _run(_VERIFY_CODE, [_email_key("email_code", email)], code_hash, max_attempts)
