"""Extension objects, created unbound here and bound to an app in create_app()."""

from __future__ import annotations

import redis
from flask import Flask, current_app, request
from flask_babel import Babel
from flask_cors import CORS
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class RedisStore:
    """The app's one Redis client and the prefix that every key carries.

    Both live in app.extensions, so that apps with other settings (tests) can
    exist side by side in one process.
    """

    def init_app(self, app: Flask) -> None:
        cfg = app.config["REDIS"]
        options = {
            "socket_timeout": cfg["socket_timeout"],
            "socket_connect_timeout": cfg["socket_connect_timeout"],
            "decode_responses": True,
            # Fail fast: a dead Redis answers 503 now instead of after retries.
            "retry": Retry(NoBackoff(), 0),
        }
        if cfg["cluster"]:
            client = redis.RedisCluster.from_url(cfg["url"], **options)
        else:
            client = redis.Redis.from_url(cfg["url"], health_check_interval=30, **options)
        app.extensions["redis_store"] = (client, cfg["key_prefix"], {})

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis_store"][0]

    @property
    def prefix(self) -> str:
        return current_app.extensions["redis_store"][1]

    @property
    def scripts(self) -> dict:
        """Lua scripts registered on this app's client, by source."""
        return current_app.extensions["redis_store"][2]

    def key(self, name: str) -> str:
        return self.prefix + name


def client_ip() -> str:
    """The client address, after ProxyFix has applied app.trusted_proxies."""
    return request.remote_addr or "unknown"


def select_locale() -> str:
    """?lang=, then Accept-Language, then app.default_language."""
    supported = current_app.config["APP"]["languages"]
    wanted = [request.args.get("lang", "")] + [value for value, _ in request.accept_languages]
    for tag in wanted:
        locale = _match_locale(tag, supported)
        if locale:
            return locale
    return current_app.config["APP"]["default_language"]


def _match_locale(tag: str, supported: list[str]) -> str | None:
    tag = tag.strip().replace("-", "_").lower()
    if not tag:
        return None
    for locale in supported:
        if locale.lower() == tag or locale.lower().split("_")[0] == tag.split("_")[0]:
            return locale
    return None


db = SQLAlchemy(model_class=Base)
redis_store = RedisStore()
babel = Babel()
limiter = Limiter(key_func=client_ip)
cors = CORS()
