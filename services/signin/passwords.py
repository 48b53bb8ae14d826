"""The password factor ("pwd"): argon2id hashing, and the lockout after wrong passwords, by email."""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

import codes
from config import settings
from errors import ApiError
from models import UserModel
from store import login_failures

# One argon2 computation (hash or verify) at a time per process: each already runs its 4 lanes on
# threads of its own and fills 64 MiB, so a worker's threads side by side only thrash the CPU and caches.
_argon2_slot = threading.BoundedSemaphore(1)


def init_app(app: Flask) -> None:
    """argon2id at auth.password_hashing, and the hash verified against when an email has no
    password, so that both cases cost the same: made at start, so the first such login costs what
    every other does (and gunicorn's preload makes it once)."""
    cost = app.config["SETTINGS"].auth.password_hashing
    hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_cost, parallelism=cost.parallelism)
    app.extensions["password_hasher"] = (hasher, hasher.hash(secrets.token_hex(16)))


def _hasher() -> tuple[PasswordHasher, str]:
    return current_app.extensions["password_hasher"]


def hash_password(password: str) -> str:
    return _argon2(_hasher()[0].hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return _argon2(hasher.verify, password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def upgrade(user: UserModel, password: str) -> None:
    """Rehash a just-verified password made with older parameters."""
    if _hasher()[0].check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)


def _argon2(compute: Callable[..., Any], *args: Any) -> Any:
    """One argon2 computation at a time per process; under gevent, on a real thread of the hub's
    pool: argon2 releases the GIL, but a greenlet computing it would hold up every other request of
    its worker for the whole 100 ms (a login loop beside a /me load took /me's p99 from 37 to 192 ms)."""
    with _argon2_slot:
        if _under_gevent():
            from gevent import get_hub

            return get_hub().threadpool.apply(compute, args)
        return compute(*args)


def _under_gevent() -> bool:
    """gunicorn.conf.py patched the standard library for gevent workers (never imported otherwise)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def check(email: str, password_hash: str | None, password: str) -> None:
    """The lockout first, then the password (argon2, outside any row lock); a wrong one counts
    toward the lockout, and the lockout is looked at again after a right one: parallel wrong tries
    may have locked the email while argon2 ran. Raises unless the password is right."""
    refuse_if_locked(email)
    if not verify_password(password_hash, password):
        _record_failure(email)
    refuse_if_locked(email)


def seconds_locked(email: str) -> int:
    return login_failures.seconds_locked(email, settings.auth.max_failed_logins)


def refuse_if_locked(email: str) -> None:
    seconds = seconds_locked(email)
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)


def clear_lockout(email: str) -> None:
    login_failures.clear(email)


def _record_failure(email: str) -> None:
    """Count one wrong password in one atomic step, so parallel attempts lose no increment and
    none gets past the lock; always raises."""
    seconds = login_failures.record(email, settings.auth.max_failed_logins, int(settings.auth.lockout_minutes * 60_000))
    if seconds:
        raise ApiError.retry_after(codes.AUTH_ACCOUNT_LOCKED, seconds)
    raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
