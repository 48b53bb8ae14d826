"""Shared fixtures: an app on its own MariaDB database and Redis key prefix,
a client, an SMTP sink on loopback, and a registered user."""

from __future__ import annotations

import email
import email.policy
import os
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from config import load_config
from extensions import db, limiter, redis_store
from scripts.processes import free_port
from services import schema

BASE = load_config()
# One database and key prefix per test run, so that two runs on one machine never meet.
RUN_ID = os.environ.get("TEST_RUN_ID") or str(os.getpid())
TEST_DB_URL = make_url(BASE.database.url).set(
    database=f"{make_url(BASE.database.url).database or 'flask_api'}_test_{RUN_ID}"
).render_as_string(hide_password=False)
TEST_PREFIX = f"{BASE.redis.key_prefix}test:{RUN_ID}:"


class SmtpSink:
    """A real SMTP server on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = threading.Condition()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.arrived.notify_all()
        return "250 OK"

    @property
    def port(self) -> int:
        return self.controller.port

    def last_to(self, address: str) -> Message:
        matching = [m for m in self.messages if address in m["To"]]
        assert matching, f"no mail arrived for {address}"
        return matching[-1]


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


def settings_for_tests(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "app.env": "testing",
        "database.url": TEST_DB_URL,
        "redis.key_prefix": TEST_PREFIX,
        "smtp.port": smtp_port,
        **extra,
    }


@pytest.fixture(scope="session")
def app(smtp: SmtpSink) -> Iterator[Flask]:
    recreate_database(TEST_DB_URL)
    app = create_app(settings_for_tests(smtp.port))
    with app.app_context(), db.engine.begin() as conn:
        schema.apply_plan(conn, schema.make_plan(conn))
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(TEST_DB_URL)


@pytest.fixture
def make_app(smtp: SmtpSink, app: Flask) -> Iterator[Callable[..., Flask]]:
    """Another app on the same test database and prefix, with some settings changed."""

    def build(**overrides: Any) -> Flask:
        return create_app(settings_for_tests(smtp.port, **{k.replace("__", "."): v for k, v in overrides.items()}))

    yield build
    # Flask-Limiter keeps one storage per process; give it back to the session app.
    limiter.init_app(app)


@pytest.fixture(autouse=True)
def clean_state(app: Flask, smtp: SmtpSink) -> Iterator[None]:
    yield
    with app.app_context():
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        keys = list(redis_store.client.scan_iter(match=TEST_PREFIX + "*", count=1000))
        if keys:
            redis_store.client.delete(*keys)
    smtp.messages.clear()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


def drop_database(url: str) -> None:
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""))
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    server.dispose()


def recreate_database(url: str) -> None:
    drop_database(url)
    schema.ensure_database(url)


PASSWORD = "correct horse battery"


def register(client, email: str = "alice@example.com", password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    """Register through the API; returns the response data (token pair + user)."""
    response = client.post("/api/client/auth/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user(client) -> dict[str, Any]:
    """A registered user: {"email", "password", "id", "access_token", "refresh_token", ...}."""
    data = register(client)
    return {"email": "alice@example.com", "password": PASSWORD, "id": data["user"]["id"], **data}


@pytest.fixture
def auth_headers(user) -> dict[str, str]:
    return bearer(user["access_token"])
