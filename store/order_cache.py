"""The order cache: each order's snapshot, and the user's list pages with the count of their open
order writes, so that status and list reads need no database query (services/orders.py keeps it
true: see begin_write and end_write, and drop_pages for a new order).

Keys:

    order:{uid}:<order_no>   string  JSON of the order as the API shows it, TTL SNAPSHOT_TTL,
                                     fetched with the access check (store/sessions.py)
    order_pages:{uid}        hash    "v" -> version, "<page>:<page_size>:<status>" -> JSON page of the
                                     order list, TTL PAGES_TTL from the version's start; a page read
                                     from the database is stored only under the version that was
                                     current before the read, and only while no write is open
    order_writes:{uid}       string  counter of the user's open order writes (begin_write adds one,
                                     end_write takes it back), TTL PAGES_TTL from the last begin, so
                                     that a write that never ended stops no one for long
"""

from __future__ import annotations

import json
import random
from typing import Any

from extensions import redis_store
from store import keys, lua

SNAPSHOT = keys.per_user("order", suffix="<order_no>")
PAGES = keys.per_user("order_pages")
WRITES = keys.per_user("order_writes")

# How long an order's snapshot is kept after it was written (a read does not extend it). Only a
# write whose Redis call failed after its commit can leave one stale (services/orders.py), and
# then for no longer than this.
SNAPSHOT_TTL = 600
# How long a version of a user's cached list pages lasts, whatever happens, and how long the
# write count of a write that never ended holds readers back from storing pages.
PAGES_TTL = 60

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


def save_snapshot(user_id: int, order_no: str, snapshot: dict[str, Any], final: bool) -> None:
    """A final status is written over whatever is there: it never changes again. A PENDING one
    only where there is none, so that a reader that read the row just before a payment's
    commit cannot put PENDING back over the PAID the payment wrote."""
    redis_store.client.set(SNAPSHOT(user_id, order_no), json.dumps(snapshot), ex=SNAPSHOT_TTL, nx=not final)


def read_page(user_id: int, field: str) -> tuple[str, str]:
    """(the cached list page field, '' if none; the version a page read now may be stored under)."""
    # A version is an identifier, not a secret: random bits need no system call.
    page, version = lua.run(_READ_ORDER_PAGE, [PAGES(user_id)], field, f"{random.getrandbits(64):016x}", PAGES_TTL)
    return page, version


def save_page(user_id: int, field: str, version: str, page: dict[str, Any]) -> bool:
    """Store a page read from the database, unless an order write began since version was read."""
    return bool(lua.run(_SAVE_ORDER_PAGE, [PAGES(user_id), WRITES(user_id)], field, version, json.dumps(page)))


def drop_pages(user_id: int) -> None:
    """After the commit of a new order: the user's list pages are stale (a new version starts)."""
    redis_store.client.delete(PAGES(user_id))


def begin_write(user_id: int, order_no: str | None = None) -> None:
    """Before the commit of a change to the user's orders (order_no: the changed one): drop what
    readers would otherwise go on seeing, and keep them from storing pages until every write of
    the user that began has ended."""
    changed = [SNAPSHOT(user_id, order_no)] if order_no else []
    lua.run(_BEGIN_ORDER_WRITE, [PAGES(user_id), WRITES(user_id), *changed], PAGES_TTL)


def end_write(user_id: int, order_no: str | None = None, snapshot: dict[str, Any] | None = None) -> None:
    """After the commit: drop the pages a reader stored meanwhile, end this write's hold on
    storing, and write the order's new (final) snapshot over anything a reader stored meanwhile."""
    if snapshot is None:
        lua.run(_END_ORDER_WRITE, [PAGES(user_id), WRITES(user_id)])
    else:
        lua.run(_END_ORDER_WRITE, [PAGES(user_id), WRITES(user_id), SNAPSHOT(user_id, order_no)],
                json.dumps(snapshot), SNAPSHOT_TTL)
