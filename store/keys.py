"""Key names: the prefix, the hash-tag rule, and the declaration of every key the service writes.

Every key starts with ``redis.key_prefix``. A key of one user carries the literal hash tag
``{<user_id>}``, a key of one email the tag ``{<email_digest(email)>}``: one user's (one email's)
keys share a Redis Cluster slot, so a Lua script that touches several of them runs there unchanged.
An email is tagged by a digest: an address may hold braces, which would cut its tag short, and a
key need not carry the address.

Each store module declares its keys here with per_user / per_email and builds them only through
what those return; tests/test_store.py checks that every key a story leaves in Redis is one of
DECLARED. Flask-Limiter's keys start with LIMITER_PREFIX (its storage adds ``:LIMITER/...``).
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
    owner: str  # "user" or "email"
    suffix: str = ""  # what follows the tag, as the docstrings show it: "<sid>", "<order_no>"

    def __call__(self, owner: int | str, suffix: str | None = None) -> str:
        tag = email_digest(owner) if self.owner == "email" else str(owner)
        key = f"{redis_store.prefix}{self.name}:{{{tag}}}"
        return key if suffix is None else f"{key}:{suffix}"

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the key looks like after the prefix."""
        tag = r"\{[0-9a-f]{32}\}" if self.owner == "email" else r"\{[0-9]+\}"
        return re.compile(re.escape(self.name) + ":" + tag + (":[^:]+" if self.suffix else ""))


DECLARED: list[KeyName] = []


def per_user(name: str, suffix: str = "") -> KeyName:
    DECLARED.append(key := KeyName(name, "user", suffix))
    return key


def per_email(name: str) -> KeyName:
    DECLARED.append(key := KeyName(name, "email"))
    return key


def email_digest(email: str) -> str:
    """An email as keys carry it: fixed length, no braces, not the address itself."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def rate_limit_email(email: str) -> str:
    """The per-email rate limit's key (Flask-Limiter puts it under LIMITER_PREFIX)."""
    return "email:" + email_digest(email)
