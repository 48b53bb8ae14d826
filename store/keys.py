"""Key names: the prefix, the hash-tag rule, and the declaration of every key the service writes.

Every key starts with ``redis.key_prefix``. A key of one user carries the literal hash tag
``{<user_id>}``, a key of one email the tag ``{<digest(email)>}``, a key of one client
address the tag ``{<digest(address)>}``: one user's (one email's, one address's) keys share
a Redis Cluster slot, so a Lua script that touches several of them runs there unchanged. An email
or an address is tagged by a digest: it may hold braces, which would cut its tag short, and a key
need not carry it.

Each store module declares its keys here with per_user / per_email / per_address and builds them
only through what those return; tests/test_store.py checks that every key a story leaves in Redis
is one of DECLARED. Flask-Limiter's keys start with LIMITER_PREFIX (its storage adds ``:LIMITER/...``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from extensions import redis_store

LIMITER_PREFIX = "limits"


@dataclass(frozen=True)
class KeyName:
    """One kind of key: ``<name>:{<owner>}`` and, with a suffix, ``:<suffix>`` after it."""

    name: str
    owner: str  # "user", "email", "address" or "flow"
    suffix: str = ""  # what follows the tag, as the docstrings show it: "<sid>", "<order_no>"

    def __call__(self, owner: int | str, suffix: str | None = None) -> str:
        tag = str(owner) if self.owner == "user" else digest(owner)
        key = f"{redis_store.prefix}{self.name}:{{{tag}}}"
        return key if suffix is None else f"{key}:{suffix}"

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the key looks like after the prefix."""
        tag = r"\{[0-9]+\}" if self.owner == "user" else r"\{[0-9a-f]{32}\}"
        return re.compile(re.escape(self.name) + ":" + tag + (":[^:]+" if self.suffix else ""))


DECLARED: list[KeyName] = []


def per_user(name: str, suffix: str = "") -> KeyName:
    DECLARED.append(key := KeyName(name, "user", suffix))
    return key


def per_email(name: str) -> KeyName:
    DECLARED.append(key := KeyName(name, "email"))
    return key


def per_flow(name: str) -> KeyName:
    """A key of one anonymous ceremony (a passkey sign-in): tagged by a digest of its id."""
    DECLARED.append(key := KeyName(name, "flow"))
    return key


def per_address(name: str, suffix: str = "") -> KeyName:
    DECLARED.append(key := KeyName(name, "address", suffix))
    return key


def user_keys(user_id: int) -> list[str]:
    """The names of every key of the user's that may exist: each declared one, and those with a
    suffix as found by SCAN (a rare walk of the keyspace: for an account that is going away)."""
    client, found = redis_store.client, []
    for key in DECLARED:
        if key.owner != "user":
            continue
        if not key.suffix:
            found.append(key(user_id))
            continue
        pattern = _glob_escape(key(user_id)) + ":*"
        found.extend(name if isinstance(name, str) else name.decode() for name in
                     client.scan_iter(match=pattern, count=1000))
    return found


def _glob_escape(text: str) -> str:
    """text matched literally by SCAN's MATCH (the prefix may hold glob characters)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def digest(text: str) -> str:
    """An email or a client address as keys carry it: fixed length, no braces, not the text itself."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rate_limit_email(email: str) -> str:
    """The per-email rate limit's key (Flask-Limiter puts it under LIMITER_PREFIX)."""
    return "email:" + digest(email)


def rate_limit_email_from(email: str, address: str) -> str:
    """The key of a limit per email and client address."""
    return f"email:{digest(email)}:from:{digest(address)}"
