"""Shared fixtures: an app on its own MariaDB database and Redis key prefix,
a client, an SMTP sink on loopback, a registered user, and a headless browser.
Fixtures only: the plain helpers the tests import are in tests/helpers.py."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page

from app import create_app
from extensions import db, limiter, redis_store
from scripts.processes import free_port
from services import audit, schema
from tests.helpers import (
    PASSWORD,
    TEST_DB_URL,
    TEST_PREFIX,
    bearer,
    drop_database,
    proven,
    recreate_database,
    register,
)
from tests.live import CHROMIUM, OfflineBrowser


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


class ServerLikeClient(FlaskClient):
    """A test client that closes each response once read, as a WSGI server does after sending it,
    and lets what the app does after the answer (the account events it writes then) finish before
    the story's next step."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        response = super().open(*args, buffered=buffered, **kwargs)
        audit.wait_for_writes()
        return response


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
        # argon2id at a fraction of its cost: the suite hashes hundreds of passwords. The live servers
        # (tests/live.py) keep the real parameters, and test_auth checks that they are what a hash carries.
        "auth.password_hashing.time_cost": 1,
        "auth.password_hashing.memory_cost": 1024,
        "auth.password_hashing.parallelism": 1,
        **extra,
    }


@pytest.fixture(scope="session")
def app(smtp: SmtpSink) -> Iterator[Flask]:
    recreate_database(TEST_DB_URL)
    app = create_app(settings_for_tests(smtp.port))
    app.test_client_class = ServerLikeClient
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
        built = create_app(settings_for_tests(smtp.port, **{k.replace("__", "."): v for k, v in overrides.items()}))
        built.test_client_class = ServerLikeClient
        return built

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


@pytest.fixture
def user(client) -> dict[str, Any]:
    """A registered user: {"email", "password", "id", "access_token", "refresh_token", ...}."""
    data = register(client)
    return {"email": "alice@example.com", "password": PASSWORD, "id": data["user"]["id"], **data}


@pytest.fixture
def proven_user(client, smtp) -> dict[str, Any]:
    """A registered user whose address is proven (by a reset to the same password), as the user fixture."""
    alice = proven(client, smtp)
    return {**alice, "id": alice["user"]["id"]}


@pytest.fixture
def auth_headers(user) -> dict[str, str]:
    return bearer(user["access_token"])


@pytest.fixture(scope="session")
def browser() -> Iterator[OfflineBrowser]:
    """One chromium for the run; a test using it starts a process, so it is marked live."""
    if not CHROMIUM.exists():
        # Not a skip: a browser test that never runs proves nothing.
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
                    "(or run `apt-get install chromium`)", pytrace=False)
    offline = OfflineBrowser().start()
    yield offline
    offline.stop()


@pytest.fixture
def page(browser: OfflineBrowser) -> Iterator[Page]:
    """A fresh page; browser.refused then lists what this test's pages tried to reach off loopback."""
    browser.refused.clear()
    page = browser.new_page()
    yield page
    page.context.close()
