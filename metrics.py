"""Prometheus metrics: every counter and histogram the service keeps, and one small function per event.

Off unless app.metrics is on (docs/metrics.md lists them all). Off, prometheus_client is never imported,
nothing is registered, no request hook is added, and each event function returns at its first line.
On, under gunicorn, every worker writes its values to files of its own in PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py prepares it with prepare_multiprocess_dir) and a scrape answered by any worker adds up
every worker's, the dead ones' too; outside gunicorn (flask run, tests) the values live in the process.

Labels never carry what a client sent: the route is the URL rule (`/api/client/order/status/<order_no>`),
the method one of METHODS or "other", the status its class ("2xx").
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import lru_cache, wraps
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from flask import Flask, request

import codes
from config import ConfigError, settings
from models import REFUSED_OUTCOMES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; from a cached read (a few ms) to a login (argon2, about 0.1 s alone) under load.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LOGIN_OUTCOMES = ("ok", "wrong", "locked", "rate_limited")
REFRESH_OUTCOMES = ("rotated", "grace", "reuse", "unknown")
ORDER_EVENTS = ("created", "paid", "cancelled", "expired")
EMAIL_CODE_PURPOSES = ("login", "reset", "register")
NOTIFICATION_OUTCOMES = ("paid", "duplicate", "amount_mismatch", "needs_refund", "unknown_order", "refused")
# MySQL error numbers that call for a look at the queries rather than at the server.
_DATABASE_KINDS = {1213: "deadlock", 1205: "lock_wait_timeout"}
DEPENDENCY_KINDS = (("database", "unavailable"), ("database", "deadlock"), ("database", "lock_wait_timeout"),
                    ("database", "pool_timeout"), ("redis", "unavailable"), ("redis", "timeout"),
                    ("redis", "cluster_down"), ("redis", "rate_limit_storage"))
_LOGIN_REFUSALS = {codes.AUTH_INVALID_CREDENTIALS: "wrong", codes.AUTH_ACCOUNT_LOCKED: "locked"}

F = TypeVar("F", bound=Callable[..., Any])

# The process's metrics once an app with app.metrics on was created in it; None: every event is ignored.
_metrics: SimpleNamespace | None = None
# The (route, method, status class) series already made: looked up once, observed many times.
_request_series: dict[tuple[str, str, int], Any] = {}
# The multiprocess directory this process prepared (gunicorn's master), and whether it made it itself.
_prepared: dict[str, Any] = {}


def _declare() -> SimpleNamespace:
    """Every metric, registered once per process."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
    from prometheus_client.values import ValueClass

    disable_created_metrics()  # a *_created sample beside every series doubles a scrape for nothing
    registry = CollectorRegistry()

    def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
        return Counter(f"flask_api_{name}", doc, labels, registry=registry)

    return SimpleNamespace(
        registry=registry,
        multiprocess=getattr(ValueClass, "_multiprocess", False),
        requests=Histogram("flask_api_http_request_duration_seconds",
                           "Requests by route (the URL rule, 'unmatched' for none), method and status class, "
                           "and how long the app took to answer them", ("route", "method", "status"),
                           buckets=LATENCY_BUCKETS, registry=registry),
        logins=counter("logins", "Password logins by outcome", ("outcome",)),
        refreshes=counter("refreshes", "Refresh token rotations by outcome", ("outcome",)),
        email_codes=counter("email_codes", "Mailed codes by purpose, sent or failed", ("purpose", "outcome")),
        orders=counter("orders", "Orders created, paid, cancelled and expired", ("event",)),
        notifications=counter("payment_notifications", "Payment notifications by provider and outcome",
                              ("provider", "outcome")),
        rate_limited=counter("rate_limited", "Requests refused by a rate limit, by route", ("route",)),
        dependency_errors=counter("dependency_errors", "Requests answered 503 for a database or Redis error",
                                  ("dependency", "kind")),
    )


def init_app(app: Flask) -> None:
    """Declare the metrics when app.metrics is on; off, do nothing at all."""
    global _metrics
    config = app.config["SETTINGS"]
    if not config.app.metrics:
        return
    if _metrics is None:
        if os.environ.get(MULTIPROC_ENV):  # outside gunicorn (a flask command) nothing has made it yet
            _make_dir(Path(os.environ[MULTIPROC_ENV]))
        _metrics = _declare()
    # Every known series from the start, at 0: a rate over a series that appears only at its first
    # event misses that event.
    for outcome in LOGIN_OUTCOMES:
        _metrics.logins.labels(outcome)
    for outcome in REFRESH_OUTCOMES:
        _metrics.refreshes.labels(outcome)
    for event in ORDER_EVENTS:
        _metrics.orders.labels(event)
    for purpose in EMAIL_CODE_PURPOSES:
        for outcome in ("sent", "failed"):
            _metrics.email_codes.labels(purpose, outcome)
    for provider in config.payment.providers:
        for outcome in NOTIFICATION_OUTCOMES:
            _metrics.notifications.labels(provider, outcome)
    for dependency, kind in DEPENDENCY_KINDS:
        _metrics.dependency_errors.labels(dependency, kind)


def request_observer(app: Flask) -> Callable[[Any, str, int, float], None] | None:
    """For logs.py's after-request hook: what it calls once per request, or None when app.metrics is off."""
    return _observe_request if app.config["SETTINGS"].app.metrics else None


def _observe_request(rule: Any, method: str, status: int, seconds: float) -> None:
    route = rule.rule if rule is not None else "unmatched"
    if method not in METHODS:  # any token is a method to HTTP: not one series per invented one
        method = "other"
    key = (route, method, status // 100)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = _metrics.requests.labels(route, method, f"{status // 100}xx")
    series.observe(seconds)


def counted_login(func: F) -> F:
    """Decorate the password login: each call counts one outcome (ok, wrong or locked); a login that
    fails for another reason (a 503) is no outcome. rate_limited is counted by rate_limited()."""

    @wraps(func)
    def login(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except Exception as error:
            outcome = _LOGIN_REFUSALS.get(getattr(error, "code", None))
            if outcome is not None and _metrics is not None:
                _metrics.logins.labels(outcome).inc()
            raise
        if _metrics is not None:
            _metrics.logins.labels("ok").inc()
        return result

    return login  # type: ignore[return-value]


def counts_order(event: str) -> Callable[[F], F]:
    """Decorate a function that makes one order event and commits it: counted each time it returns."""

    def decorate(func: F) -> F:
        @wraps(func)
        def counted(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            order(event)
            return result

        return counted  # type: ignore[return-value]

    return decorate


def refresh(outcome: str) -> None:
    """A refresh token presented to the rotation: rotated, grace, reuse or unknown."""
    if _metrics is not None:
        _metrics.refreshes.labels(outcome).inc()


def email_code(purpose: str, outcome: str) -> None:
    """A mailed code (purpose login, reset or register): sent, or failed at the mail server."""
    if _metrics is not None:
        _metrics.email_codes.labels(purpose, outcome).inc()


def order(event: str, count: int = 1) -> None:
    """Orders created, paid, cancelled or expired (count of them), once committed."""
    if _metrics is not None and count:
        _metrics.orders.labels(event).inc(count)


def payment_applied(outcome: str) -> None:
    """A payment stored with its order's transition committed: a paid one counts as an order paid."""
    if outcome == "paid":
        order("paid")


def notification(provider: str, outcome: str) -> None:
    """A provider's notification, handled: paid, duplicate, amount_mismatch, needs_refund, unknown_order."""
    if _metrics is not None:
        _metrics.notifications.labels(provider, outcome).inc()


def notification_refused(provider: str, error: Any) -> None:
    """A notification answered with an error. Those of a stored outcome (amount_mismatch, unknown_order)
    were counted as such by notification(); the rest (signature, age, format, a conflict) are refused."""
    if _metrics is not None and error.code not in REFUSED_OUTCOMES.values():
        _metrics.notifications.labels(provider, "refused").inc()


def rate_limited() -> None:
    """The current request was refused by a rate limit; on the login route that is a login outcome too."""
    if _metrics is None:
        return
    rule = request.url_rule
    route = rule.rule if rule is not None else "unmatched"
    _metrics.rate_limited.labels(route).inc()
    if request.endpoint == "auth.login":
        _metrics.logins.labels("rate_limited").inc()


def unavailable(error: Exception, number: int | None) -> None:
    """A request answered 503 for a dependency's error (errors.handle_unavailable), by kind."""
    if _metrics is not None:
        _metrics.dependency_errors.labels(*_dependency_kind(error, number)).inc()


def _dependency_kind(error: Exception, number: int | None) -> tuple[str, str]:
    name = type(error).__name__
    module = type(error).__module__
    if module.startswith("limits"):  # the rate limiter's storage, which is our Redis
        return "redis", "rate_limit_storage"
    if module.startswith("redis"):
        return "redis", {"TimeoutError": "timeout", "ClusterDownError": "cluster_down"}.get(name, "unavailable")
    if name == "TimeoutError":  # sqlalchemy's: no pooled connection came free in database.pool_timeout
        return "database", "pool_timeout"
    return "database", _DATABASE_KINDS.get(number, "unavailable")


def allowed(address: str) -> bool:
    """Whether a client at address may read the metrics (app.metrics_allow)."""
    return _allowed(address, tuple(settings.app.metrics_allow))


@lru_cache(maxsize=64)
def _allowed(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # a dual-stack socket's IPv4 client
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network) for network in networks)


def exposition() -> tuple[bytes, str]:
    """The scrape: the text format (0.0.4, what every Prometheus reads) and its content type; under
    gunicorn, the sum of every worker's files."""
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest, multiprocess

    registry = _metrics.registry
    if _metrics.multiprocess:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


def prepare_multiprocess_dir(enabled: bool) -> str | None:
    """gunicorn.conf.py, in the master, before the app is loaded: with metrics on, the directory where
    every worker writes its values, set in the environment before prometheus_client is first imported.

    PROMETHEUS_MULTIPROC_DIR if set (created if missing, emptied of an earlier run's files), else a fresh
    temporary directory, removed by remove_multiprocess_dir at exit. Once per master: gunicorn reads its
    config file again on every HUP, and the workers of before and after the reload share the directory.
    """
    if not enabled:
        return None
    if _prepared:
        return _prepared["path"]
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = _make_dir(Path(given))
        for stale in path.glob("*.db"):  # counters of an earlier run's workers would be added in
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="flask-api-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
    _prepared.update(path=str(path), owned=not given)
    return str(path)


def _make_dir(path: Path) -> Path:
    """The multiprocess directory, made if missing: prometheus_client writes a file there at the first
    series, and a missing directory would stop the start with a FileNotFoundError's traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{MULTIPROC_ENV}={path}: cannot make the directory: {error.strerror}") from None
    return path


def worker_exited(pid: int) -> None:
    """gunicorn child_exit: the worker is gone; its counters stay in the sum, its live gauges go."""
    if _prepared:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _prepared["path"])


def remove_multiprocess_dir() -> None:
    """gunicorn on_exit: remove the directory if prepare_multiprocess_dir made it."""
    if _prepared.get("owned"):
        shutil.rmtree(_prepared["path"], ignore_errors=True)
