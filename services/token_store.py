"""The whole Redis layout: every key, TTL, Lua script and token operation.

Per user (``{uid}`` is a literal hash tag, so one user's keys share a Redis
Cluster slot and every script below touches one slot only):

    access_token:{uid}       zset  md5(access token)  -> expiry (unix seconds)
    refresh_token:{uid}      zset  md5(refresh token) -> expiry
    refresh_token_next:{uid}:<sid>  string, TTL the grace window: the refresh token that
                                   the session's last rotation made, handed to a racing tab
                                   instead of a new one
    session:{uid}            hash  sid -> {"c": created, "u": last used, "a": [access md5s],
                                   "r": [live refresh md5s], "g": refresh generation,
                                   "p": md5 of the refresh token rotated last, "w": end of its
                                   grace window}; an older generation presented is theft
    user:{uid}               string  JSON snapshot of the public user fields, so that an
                                   authenticated request needs no database query
    order:{uid}:<order_no>   string  JSON of the order as the API shows it, TTL ORDER_SNAPSHOT_TTL,
                                   fetched with the access check: a status read needs no
                                   database query either (services/orders.py keeps it true)
    order_pages:{uid}        hash  "v" -> version, "<page>:<page_size>:<status>" -> JSON page of the
                                   order list, TTL ORDER_PAGES_TTL from the version's start; a page
                                   read from the database is stored only under the version that
                                   was current before the read, and only while no write is open
    order_writes:{uid}       counter of the user's open order writes (begin_order_write adds one,
                                   end_order_write takes it back), TTL ORDER_PAGES_TTL from the
                                   last begin, so that a write that never ended stops no one for long

Per email (``{email}`` is a hash tag made of email_digest(email): an address can hold braces,
which would split the tag, and keys need not carry the address itself):

    email_code:{email}       hash  {"hash", "attempts"}, TTL auth.email_code_ttl
    email_code_lock:{email}  string, TTL auth.email_code_resend_seconds
    email_code_failures:{email}  counter of wrong codes across resends, TTL auth.email_code_failure_window
    login_failures:{email}   counter of wrong password logins, with or without an account, TTL
                             auth.lockout_minutes from the first failure, and again from the one
                             that reaches auth.max_failed_logins (which locks the email)

Expired members are trimmed on every write and every key carries a TTL.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from extensions import redis_store

# How long an order's snapshot is kept after it was written (a read does not extend it). Only a
# write whose Redis call failed after its commit can leave one stale (services/orders.py), and
# then for no longer than this.
ORDER_SNAPSHOT_TTL = 600
# How long a version of a user's cached list pages lasts, whatever happens, and how long the
# write count of a write that never ended holds readers back from storing pages.
ORDER_PAGES_TTL = 60

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
-- Record new tokens in a session (r_md5 '' adds an access token only). The record keeps only
-- members still tracked, newest first, and at most MAX_ACCESS_PER_SESSION access tokens, so that
-- neither it nor the work of these scripts grows with the number of refreshes.
local function add_tokens(sid, now, a_md5, a_exp, r_md5, r_exp)
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
  s.a, s.r, s.u = live_a, live_r, now
  redis.call('HSET', KEYS[3], sid, cjson.encode(s))
end
local function touch(ttl)
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# ARGV: now, sid, access md5, access exp, refresh md5, refresh exp, max sessions, ttl
_ISSUE = _COMMON + """
local now = tonumber(ARGV[1])
trim(now)
add_tokens(ARGV[2], now, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
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

# ARGV: now, presented md5, presented generation, sid, access md5, access exp, refresh md5,
#       refresh exp, grace, ttl, the new refresh token. Returns {outcome, successor refresh token or ''}.
# A session's record holds its refresh generation "g" (the gen claim of its live refresh token),
# and, for the grace window, the previous token "p" and the window's end "w". So reuse detection
# is constant-size: a presented token of an older generation of a live session is a copy that
# was rotated already, however long ago.
_ROTATE = _COMMON + """
local now = tonumber(ARGV[1])
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
  add_tokens(sid, now, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
  touch(tonumber(ARGV[10]))
  return {'rotated', ''}
end
local successor = md5 == s.p and now < (s.w or 0) and redis.call('GET', KEYS[5])
if successor then
  -- A racing tab: a new access token, and the refresh token the first rotation made, so that
  -- the session still has one refresh chain and a thief's copy is caught at its next use.
  trim(now)
  add_tokens(sid, now, ARGV[5], ARGV[6], '', 0)
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

# KEYS: access, user snapshot[, order snapshot] (only what it reads: every authenticated request
# sends them). ARGV: md5, now. Returns false when the token is not live, else the snapshots ('' if
# missing).
_CHECK_ACCESS = """
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then return false end
return {redis.call('GET', KEYS[2]) or '', KEYS[3] and redis.call('GET', KEYS[3]) or ''}
"""

# KEYS: order_pages. ARGV: field, a new version, ttl. Returns {page or '', the current version}.
_READ_ORDER_PAGE = """
local version = redis.call('HGET', KEYS[1], 'v')
if not version then
  version = ARGV[2]
  redis.call('HSET', KEYS[1], 'v', version)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {redis.call('HGET', KEYS[1], ARGV[1]) or '', version}
"""

# KEYS: order_pages, order_writes. ARGV: field, version read before the page, page JSON.
_SAVE_ORDER_PAGE = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: order_pages, order_writes[, order snapshot]. ARGV: ttl.
_BEGIN_ORDER_WRITE = """
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
if KEYS[3] then redis.call('DEL', KEYS[3]) end
return 1
"""

# KEYS: order_pages, order_writes[, order snapshot]. ARGV: [snapshot JSON, its ttl].
_END_ORDER_WRITE = """
redis.call('DEL', KEYS[1])
-- a count that expired while its write was open comes back as -1: gone all the same
if redis.call('DECR', KEYS[2]) <= 0 then redis.call('DEL', KEYS[2]) end
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2]) end
return 1
"""

# ARGV: sid
_REVOKE_SESSION = _COMMON + """
forget_session(ARGV[1])
return 1
"""

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


USER_KEYS = ("access_token:", "refresh_token:", "session:", "user:")


def _user_keys(user_id: int, names: tuple[str, ...] = USER_KEYS) -> list[str]:
    prefix, tag = redis_store.prefix, f"{{{user_id}}}"
    return [prefix + name + tag for name in names]


def _order_key(user_id: int, order_no: str) -> str:
    return redis_store.key(f"order:{{{user_id}}}:{order_no}")


def email_digest(email: str) -> str:
    """An email as it appears in keys: fixed length, no hash-tag braces, not the address itself."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _email_key(name: str, email: str) -> str:
    return redis_store.key(f"{name}:{{{email_digest(email)}}}")


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


def rotate(user_id: int, presented: str, generation: int, issued: Issued, grace: int,
           ttl: int) -> tuple[str, str | None]:
    """Swap a refresh token (of refresh generation `generation`) for a new pair, atomically;
    returns (outcome, refresh token to hand out).

    Outcomes: 'rotated' (first use: the issued pair stands), 'grace' (a repeat inside
    the grace window: the issued access token and the first rotation's refresh
    token), 'reuse' (an older generation of a live session: every session was revoked)
    or 'unknown' (never issued, logged out or expired: refused).
    """
    keys = [*_user_keys(user_id), redis_store.key(f"refresh_token_next:{{{user_id}}}:{issued.sid}")]
    outcome, successor = _run(_ROTATE, keys, f"{time.time():.4f}", fingerprint(presented), generation,
                              issued.sid, fingerprint(issued.access_token), issued.access_exp,
                              fingerprint(issued.refresh_token), issued.refresh_exp, grace, ttl,
                              issued.refresh_token)
    return outcome, (successor or issued.refresh_token) if outcome in ("rotated", "grace") else None


def check_access(user_id: int, token: str, order_no: str | None = None) -> tuple[str, str] | None:
    """One round trip: None if the access token is not live, else (the user's snapshot, the
    snapshot of the user's order order_no), '' for one that is absent or not asked for."""
    keys = _user_keys(user_id, ("access_token:", "user:")) + ([_order_key(user_id, order_no)] if order_no else [])
    result = _run(_CHECK_ACCESS, keys, fingerprint(token), time.time())
    return None if result is None else tuple(result)


def revoke_session(user_id: int, sid: str) -> None:
    _run(_REVOKE_SESSION, _user_keys(user_id), sid)


def revoke_all(user_id: int) -> None:
    """Log the user out everywhere. Ended sessions are forgotten with their generations: an old
    token is then merely unknown, and replaying it cannot end the user's next sessions."""
    redis_store.client.delete(*_user_keys(user_id, ("access_token:", "refresh_token:", "session:")))


def forget_user(user_id: int) -> None:
    """Revoke everything and drop the snapshot, for an account that is going away."""
    redis_store.client.delete(*_user_keys(user_id))


def live_sessions(user_id: int) -> int:
    """Sessions that still hold a live refresh token."""
    refresh, session = _user_keys(user_id, ("refresh_token:", "session:"))
    now = time.time()
    count = 0
    for raw in redis_store.client.hvals(session):
        members = json.loads(raw)["r"]
        if any((redis_store.client.zscore(refresh, m) or 0) > now for m in members):
            count += 1
    return count


def tracked(user_id: int) -> dict[str, dict[str, float]]:
    """Every tracked member and its score, by set name (for operators and tests)."""
    names = ("access_token", "refresh_token")
    return {name: dict(redis_store.client.zrange(key, 0, -1, withscores=True))
            for name, key in zip(names, _user_keys(user_id, (f"{name}:" for name in names)), strict=True)}


def save_user_snapshot(user_id: int, snapshot: dict[str, Any], ttl: int) -> None:
    redis_store.client.set(_user_keys(user_id, ("user:",))[0], json.dumps(snapshot), ex=ttl)


def load_user_snapshot(user_id: int) -> dict[str, Any] | None:
    raw = redis_store.client.get(_user_keys(user_id, ("user:",))[0])
    return json.loads(raw) if raw else None


def save_order_snapshot(user_id: int, order_no: str, snapshot: dict[str, Any], final: bool) -> None:
    """A final status is written over whatever is there: it never changes again. A PENDING one
    only where there is none, so that a reader that read the row just before a payment's
    commit cannot put PENDING back over the PAID the payment wrote."""
    redis_store.client.set(_order_key(user_id, order_no), json.dumps(snapshot), ex=ORDER_SNAPSHOT_TTL,
                           nx=not final)


def read_order_page(user_id: int, field: str) -> tuple[str, str]:
    """(the cached list page field, '' if none; the version a page read now may be stored under)."""
    # A version is an identifier, not a secret: random bits need no system call.
    page, version = _run(_READ_ORDER_PAGE, _user_keys(user_id, ("order_pages:",)), field,
                         f"{random.getrandbits(64):016x}", ORDER_PAGES_TTL)
    return page, version


def save_order_page(user_id: int, field: str, version: str, page: dict[str, Any]) -> bool:
    """Store a page read from the database, unless an order write began since version was read."""
    keys = _user_keys(user_id, ("order_pages:", "order_writes:"))
    return bool(_run(_SAVE_ORDER_PAGE, keys, field, version, json.dumps(page)))


def begin_order_write(user_id: int, order_no: str | None = None) -> None:
    """Before the commit of a change to the user's orders (order_no: the changed one): drop what
    readers would otherwise go on seeing, and keep them from storing pages until every write of
    the user that began has ended."""
    keys = _user_keys(user_id, ("order_pages:", "order_writes:"))
    _run(_BEGIN_ORDER_WRITE, keys + ([_order_key(user_id, order_no)] if order_no else []), ORDER_PAGES_TTL)


def end_order_write(user_id: int, order_no: str | None = None, snapshot: dict[str, Any] | None = None) -> None:
    """After the commit: drop the pages a reader stored meanwhile, end this write's hold on
    storing, and write the order's new (final) snapshot over anything a reader stored meanwhile."""
    keys = _user_keys(user_id, ("order_pages:", "order_writes:"))
    if snapshot is None:
        _run(_END_ORDER_WRITE, keys)
    else:
        _run(_END_ORDER_WRITE, keys + [_order_key(user_id, order_no)], json.dumps(snapshot), ORDER_SNAPSHOT_TTL)


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


def verify_code(email: str, code_hash: str, max_attempts: int, max_failures: int, window: int) -> str:
    """'ok' (consumed), 'wrong', 'burned' (too many tries, now gone), 'expired', or 'blocked'
    (max_failures wrong codes for this email within the window, whatever codes were sent)."""
    keys = [_email_key("email_code", email), _email_key("email_code_failures", email)]
    return _run(_VERIFY_CODE, keys, code_hash, max_attempts, max_failures, window)


def record_login_failure(email: str, max_failures: int, lock_ms: int) -> int:
    """Count a wrong login; returns 0, or the seconds left if the email was locked already."""
    ms_left = _run(_LOGIN_FAILURE, [_email_key("login_failures", email)], max_failures, lock_ms)
    return -(-ms_left // 1000)


def login_lock(email: str, max_failures: int) -> int:
    """Seconds the email stays locked against password logins; 0 when it is not."""
    key = _email_key("login_failures", email)
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    count, ms_left = pipe.execute()
    return max(1, -(-ms_left // 1000)) if count and int(count) >= max_failures else 0


def clear_login_failures(email: str) -> None:
    redis_store.client.delete(_email_key("login_failures", email))
