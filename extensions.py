"""Extension objects, created unbound here and bound to an app in create_app()."""

from __future__ import annotations

from functools import lru_cache

import redis
import sqlalchemy.exc
from babel import Locale
from flask import Flask, current_app, request
from flask_babel import Babel
from flask_cors import CORS
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import DeclarativeBase
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from config import settings


class Base(DeclarativeBase):
    pass


class RedisStore:
    """The app's one Redis client and the prefix that every key carries.

    Both live in app.extensions, so that apps with other settings (tests) can
    exist side by side in one process.
    """

    def init_app(self, app: Flask) -> None:
        cfg = app.config["SETTINGS"].redis
        options = {
            "socket_timeout": cfg.socket_timeout,
            "socket_connect_timeout": cfg.socket_connect_timeout,
            "decode_responses": True,
            # Fail fast: a dead Redis answers 503 now instead of after retries.
            "retry": Retry(NoBackoff(), 0),
        }
        if cfg.cluster:
            client = redis.RedisCluster.from_url(cfg.url, **options)
        else:
            client = redis.Redis.from_url(cfg.url, health_check_interval=30, **options)
        app.extensions["redis_store"] = (client, cfg.key_prefix, {})

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["redis_store"][0]

    @property
    def prefix(self) -> str:
        return current_app.extensions["redis_store"][1]

    @property
    def cluster(self) -> bool:
        """Whether the client talks to a Redis Cluster: a script's keys must then share one slot."""
        return isinstance(self.client, redis.RedisCluster)

    @property
    def scripts(self) -> dict:
        """Lua scripts registered on this app's client, by source."""
        return current_app.extensions["redis_store"][2]

    def key(self, name: str) -> str:
        return self.prefix + name


def end_db_session(exc: BaseException | None) -> None:
    """Teardown: give the request's connection back; one that died with the server is dropped.

    The session's closing ROLLBACK fails on a connection the server closed under it (a restart
    mid-request). The answer is already made by then (a 503, or a 2xx committed just before),
    so it must not turn into a bare 500: invalidate the connection instead, which sends nothing.
    """
    try:
        db.session.remove()
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as error:
        current_app.logger.warning("database connection lost at teardown: %s", error.__class__.__name__)
        db.session().invalidate()  # the scoped_session proxy does not offer invalidate()
        db.session.remove()


def client_ip() -> str:
    """The client address, after ProxyFix has applied app.trusted_proxies."""
    return request.remote_addr or "unknown"


def select_locale() -> Locale:
    """?lang=, then Accept-Language, then app.default_language."""
    cfg = settings.app
    lang = request.args.get("lang", "") if request.query_string else ""  # most requests have no query
    return _select_locale(lang, request.headers.get("Accept-Language", ""),
                          tuple(cfg.languages), cfg.default_language)


@lru_cache(maxsize=256)
def _select_locale(lang: str, accept: str, supported: tuple[str, ...], default: str) -> Locale:
    """Decided once per distinct (?lang=, Accept-Language): clients send few distinct values, and
    building the babel Locale (a file lookup) on every request cost more than the rest of the choice."""
    wanted = [lang] + [value for value, _ in parse_accept_header(accept, LanguageAccept)]
    for tag in wanted:
        locale = _match_locale(tag, supported)
        if locale:
            return Locale.parse(locale)
    return Locale.parse(default)


def _match_locale(tag: str, supported: tuple[str, ...]) -> str | None:
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
