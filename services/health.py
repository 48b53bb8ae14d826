"""Dependency checks for the health endpoint."""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import create_engine, text

from errors import UNAVAILABLE
from extensions import redis_store

PROBE_TIMEOUT = 1  # seconds per step, so that health answers within 2 s even from a frozen server


def init_app(app: Flask) -> None:
    """A pool of its own for the database probe, with short timeouts.

    The request pool waits database.read_timeout (10 s) for an answer: a MariaDB that accepts
    connections and never answers would hold health that long. No pre-ping: the probe is the ping.
    Two connections and no overflow: probes that come together wait a moment for one rather than
    open and close a connection each.
    """
    app.extensions["health_engine"] = create_engine(
        app.config["SQLALCHEMY_DATABASE_URI"], pool_size=2, max_overflow=0, pool_timeout=PROBE_TIMEOUT,
        pool_recycle=app.config["SETTINGS"].database.pool_recycle,
        connect_args={"connect_timeout": PROBE_TIMEOUT, "read_timeout": PROBE_TIMEOUT,
                      "write_timeout": PROBE_TIMEOUT})


def check() -> dict[str, str]:
    """Ask MySQL and Redis for a trivial answer; report each as ok or down."""
    report = {"database": _probe(_ping_database), "redis": _probe(redis_store.client.ping)}
    report["status"] = "ok" if all(value == "ok" for value in report.values()) else "down"
    report["version"] = current_app.config["VERSION"]
    return report


def _ping_database() -> None:
    with current_app.extensions["health_engine"].connect() as conn:
        conn.execute(text("SELECT 1"))


def _probe(ping) -> str:
    try:
        ping()
    except UNAVAILABLE:  # the very thing being reported, so not re-raised
        return "down"
    return "ok"
