"""With every workaround switched off the app is the libraries as they ship, and still does its job."""

import logging
import time

import pytest
import requests
from sqlalchemy import create_engine, text

import codes
from extensions import db, limiter
from tests.helpers import TEST_DB_URL, login, register
from tests.live import Gunicorn

ALL_OFF = {"workarounds__drop_idle_limiter_hooks": False, "workarounds__cors_only_with_origin": False,
           "workarounds__skip_log_caller_lookup": False, "workarounds__gthread_leave_reuse_port_group": False,
           "workarounds__zxcvbn_passwords_line": False, "workarounds__pre_ping_by_socket": False}


def limiter_hooks(app):
    return [limiter._check_request_limit in app.before_request_funcs[None],
            limiter._Limiter__release_context in app.teardown_request_funcs[None]]


def test_the_switches_are_on_by_default_and_each_removes_what_it_says(app, make_app):
    assert limiter_hooks(app) == [False, False]
    assert limiter_hooks(make_app(**ALL_OFF)) == [True, True]


def test_a_whole_story_works_with_every_workaround_off(make_app, monkeypatch):
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)  # process-wide: restored after the test
    # the registration counts in the same per-address budget of password and code checks
    client = make_app(**ALL_OFF, auth__rate_limits__login_per_ip="4/minute").test_client()
    registered = client.post("/api/client/auth/register", json={"email": "off@example.com",
                                                                 "password": "correct horse battery"})
    assert registered.status_code == 201
    headers = {"Authorization": f"Bearer {registered.get_json()['data']['access_token']}"}
    assert client.get("/api/client/auth/me", headers=headers).get_json()["data"]["email"] == "off@example.com"
    created = client.post("/api/client/order/create", json={"product_id": "basic-monthly"}, headers=headers)
    assert created.status_code == 201
    order_no = created.get_json()["data"]["order_no"]
    assert client.post(f"/api/client/order/cancel/{order_no}", headers=headers).get_json()["data"]["status"] \
        == "CANCELLED"

    preflight = client.options("/api/client/auth/me", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"
    assert "Access-Control-Allow-Origin" not in client.get("/api/system/health").headers

    answers = [client.post("/api/client/auth/login", json={"email": "off@example.com", "password": "wrong one!"})
               for _ in range(4)]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert answers[-1].headers["Retry-After"]


@pytest.mark.parametrize(("by_socket", "pre_ping", "answered"), [
    (True, True, 200),  # the default: the socket shows the server closed it
    (False, True, 200),  # SQLAlchemy's ping finds it dead
    (False, False, 503),  # nothing looks: the request meets the closed connection
])
def test_a_connection_the_database_closed_between_requests_is_replaced_at_checkout(
        make_app, by_socket, pre_ping, answered):
    app = make_app(database__pool_size=1, database__max_overflow=0, database__pool_pre_ping=pre_ping,
                   workarounds__pre_ping_by_socket=by_socket)
    client = app.test_client()
    register(client, "kept@example.com")
    with app.app_context():  # the pool's one connection, as MariaDB knows it
        pooled = db.session.scalar(text("SELECT CONNECTION_ID()"))
        db.session.remove()
    admin = create_engine(TEST_DB_URL)  # another client closes it, as a restart or wait_timeout would
    with admin.connect() as conn:
        conn.execute(text(f"KILL CONNECTION {int(pooled)}"))
    admin.dispose()
    time.sleep(0.2)
    answer = login(client, "kept@example.com")
    assert answer.status_code == answered
    if answered == 503:
        assert answer.get_json()["code"] == codes.SERVICE_UNAVAILABLE.code


@pytest.mark.live
def test_gunicorn_serves_and_stops_with_the_worker_workaround_off(app):
    with Gunicorn(workarounds__gthread_leave_reuse_port_group="false") as server:
        assert requests.get(server.url + "/api/system/health", timeout=5).json()["data"]["status"] == "ok"
    assert server.process.returncode == 0
