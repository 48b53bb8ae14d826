"""The application factory."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

import commands
import errors
import logs
import models  # noqa: F401  (registers every table with the metadata)
from blueprints import account, auth, order, payment, system
from config import load_config
from extensions import babel, cors, db, end_db_session, limiter, redis_store, select_locale
from store import keys

__version__ = "0.1.0"


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from config.yaml, APP__... variables and optional dotted overrides."""
    config = load_config(overrides=overrides)
    app = Flask(__name__)
    configure(app, config)
    register_extensions(app)
    logs.init_app(app)
    errors.register_error_handlers(app)
    register_blueprints(app)
    commands.init_app(app)
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
        "pool_pre_ping": database.pool_pre_ping,
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


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    app.teardown_appcontext(end_db_session)  # runs before Flask-SQLAlchemy's own, which then finds nothing to do
    redis_store.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(app.root_path, "translations"))
    limiter.init_app(app)
    _drop_idle_limiter_hooks(app)
    _register_cors(app)


def _register_cors(app: Flask) -> None:
    """flask-cors, consulted only for requests that carry an Origin header.

    Its after-request function matches every response against the resource rules, at about a
    twentieth of an authenticated request; a request without Origin is not cross-origin (no
    browser asked), and there is nothing for it to add. flask-cors has no setting for that, and
    its extension object offers no hook to wrap: so the function init_app registered is replaced.
    """
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["SETTINGS"].app.cors_origins}},
                  expose_headers=["X-Request-ID", "Retry-After"], always_send=False)
    answer_cors = app.after_request_funcs[None].pop()  # the function init_app has just added
    app.after_request(lambda response: answer_cors(response) if "Origin" in request.headers else response)


def _drop_idle_limiter_hooks(app: Flask) -> None:
    """Flask-Limiter runs three hooks around every request; with our settings all three are idle,
    and together they cost about a tenth of an authenticated request:

    - before it, a check of default, application and meta limits: we configure none, and each
      @limiter.limit view checks its own limits when it runs;
    - after it, headers: off (RATELIMIT_HEADERS_ENABLED; errors.py sets Retry-After on a 429),
      and costs deducted by response (deduct_when), which no limit here uses;
    - at teardown, resetting its per-request state, which lives on the request context and
      ends with it anyway.

    Flask-Limiter 4 has no public setting for this (its init_app registers all three whatever
    the config; the old auto_check switch is gone), and a subclass would override the same
    private names. Each removal names the function Flask-Limiter registered: a version that
    renames one stops the start here (ValueError), instead of silently keeping the cost.
    """
    config = app.config
    if not any(config.get(key) for key in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")):
        app.before_request_funcs[None].remove(limiter._check_request_limit)
    if not config.get("RATELIMIT_HEADERS_ENABLED"):
        inject_headers = next((hook for hook in app.after_request_funcs[None]
                               if isinstance(hook, partial) and hook.args == (limiter,)), None)
        app.after_request_funcs[None].remove(inject_headers)
    app.teardown_request_funcs[None].remove(limiter._Limiter__release_context)


def register_blueprints(app: Flask) -> None:
    for module in (system, auth, account, order, payment):
        app.register_blueprint(module.bp)
