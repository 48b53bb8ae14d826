"""Dependency checks for the health endpoint."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import text

from errors import UNAVAILABLE
from extensions import db, redis_store


def check() -> dict[str, str]:
    """Ask MySQL and Redis for a trivial answer; report each as ok or down."""
    report = {"database": _probe(_ping_database), "redis": _probe(redis_store.client.ping)}
    report["status"] = "ok" if all(value == "ok" for value in report.values()) else "down"
    report["version"] = current_app.config["VERSION"]
    return report


def _ping_database() -> None:
    db.session.execute(text("SELECT 1"))


def _probe(ping) -> str:
    try:
        ping()
    except UNAVAILABLE:  # the very thing being reported, so not re-raised
        db.session.rollback()
        return "down"
    return "ok"
