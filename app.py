"""The application factory."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from flask import Flask, request
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

import catalogs
import codes
import commands
import errors
import logs
import metrics
import models  # noqa: F401  (registers every table with the metadata)
import workarounds
from blueprints import account, auth, jwks, order, passkeys, payment, system
from config import load_config
from errors import ApiError
from extensions import babel, cors, db, end_db_session, limiter, redis_store, select_locale
from services import audit, keyset
from store import keys

__version__ = "0.1.0"


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from config.yaml, APP__... variables and optional dotted overrides."""
    config = load_config(overrides=overrides)
    app = Flask(__name__)
    configure(app, config)
    catalogs.ensure_compiled(Path(app.root_path) / "translations", config.app.languages)  # before flask-babel reads
    register_extensions(app)
    keyset.init_app(app)
    metrics.init_app(app)
    logs.init_app(app)
    audit.init_app(app)
    app.before_request(refuse_oversized_requests)
    errors.register_error_handlers(app)
    register_blueprints(app)
    commands.init_app(app)
    workarounds.apply(app)  # last: each finds what the others registered
    return app


def configure(app: Flask, config: Any) -> None:
    app.config["SETTINGS"] = config  # read as config.settings
    app.config["VERSION"] = __version__
    app.config["DEBUG"] = config.app.debug
    app.config["TESTING"] = config.app.env == "testing"
    app.config["MAX_CONTENT_LENGTH"] = config.app.max_content_length
    database = config.database
    app.config["SQLALCHEMY_DATABASE_URI"] = database.url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": database.pool_size,
        "max_overflow": database.max_overflow,
        "pool_recycle": database.pool_recycle,
        # With workarounds.pre_ping_by_socket, workarounds.py tests a connection at checkout instead.
        "pool_pre_ping": database.pool_pre_ping and not config.workarounds.pre_ping_by_socket,
        "pool_timeout": database.pool_timeout,
        # Every connection comes back through a Session or Connection that has already rolled
        # its transaction back; the pool's own reset would send a second ROLLBACK per request.
        "pool_reset_on_return": None,
        # A failed statement's message must not carry its parameters (emails, hashes) into the logs.
        "hide_parameters": True,
        "connect_args": {
            "connect_timeout": database.connect_timeout,
            "read_timeout": database.read_timeout,
            "write_timeout": database.read_timeout,
            "ssl_disabled": no_tls_needed(database.url),
        },
    }
    redis_cfg = config.redis
    storage_uri = redis_cfg.url
    if redis_cfg.cluster:  # limits names the cluster client by scheme, and a cluster has no db number
        storage_uri = "redis+cluster://" + storage_uri.split("://", 1)[1].split("/", 1)[0]
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        "key_prefix": redis_cfg.key_prefix + keys.LIMITER_PREFIX,
        "socket_timeout": redis_cfg.socket_timeout,
        "socket_connect_timeout": redis_cfg.socket_connect_timeout,
    }
    app.config["RATELIMIT_STRATEGY"] = "moving-window"
    trusted = config.app.trusted_proxies
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted)


def no_tls_needed(url: str) -> bool:
    """A server on this machine, and a URL that names no TLS option (?ssl_ca=...): no TLS.

    Else PyMySQL tries TLS on every connection, unverified, and builds an SSL context for each from
    the system's CA bundle (1 MB and 20 ms): for a server on loopback that buys nothing. A server
    elsewhere keeps PyMySQL's way (TLS whenever it offers it); ssl_ca= in the URL makes it verified
    and required.
    """
    parsed = make_url(url)
    if any(key.startswith("ssl") for key in parsed.query):
        return False
    host = parsed.host or "localhost"
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost
        return False


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    app.teardown_appcontext(end_db_session)  # runs before Flask-SQLAlchemy's own, which then finds nothing to do
    redis_store.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(app.root_path, "translations"))
    limiter.init_app(app)
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["SETTINGS"].app.cors_origins}},
                  expose_headers=["X-Request-ID", "Retry-After"], always_send=False)


# Within gunicorn's limits (gunicorn.conf.py sets them higher), so that the app answers these with
# the envelope; beyond gunicorn's, gunicorn answers itself (README, Deploying).
MAX_URL_LENGTH = 4096
MAX_HEADER_LENGTH = 8192


def refuse_oversized_requests() -> None:
    """A URL or a header longer than any client of ours sends: refused before any work, 414 / 431."""
    if len(request.environ.get("RAW_URI") or request.full_path) > MAX_URL_LENGTH:
        raise ApiError(codes.URI_TOO_LONG)
    if any(len(value) > MAX_HEADER_LENGTH for value in request.headers.values()):
        raise ApiError(codes.HEADER_TOO_LARGE)


def register_blueprints(app: Flask) -> None:
    for module in (system, jwks, auth, account, passkeys, order, payment):
        app.register_blueprint(module.bp)
