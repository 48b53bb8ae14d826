"""With every workaround switched off the app is the libraries as they ship, and still does its job."""

import logging

import pytest
import requests

from extensions import limiter
from tests.live import Gunicorn

ALL_OFF = {"workarounds__drop_idle_limiter_hooks": False, "workarounds__cors_only_with_origin": False,
           "workarounds__skip_log_caller_lookup": False, "workarounds__gthread_leave_reuse_port_group": False,
           "workarounds__zxcvbn_passwords_line": False}


def limiter_hooks(app):
    return [limiter._check_request_limit in app.before_request_funcs[None],
            limiter._Limiter__release_context in app.teardown_request_funcs[None]]


def test_the_switches_are_on_by_default_and_each_removes_what_it_says(app, make_app):
    assert limiter_hooks(app) == [False, False]
    assert limiter_hooks(make_app(**ALL_OFF)) == [True, True]


def test_a_whole_story_works_with_every_workaround_off(make_app, monkeypatch):
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)  # process-wide: restored after the test
    client = make_app(**ALL_OFF, auth__rate_limits__login_per_ip="3/minute").test_client()
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


@pytest.mark.live
def test_gunicorn_serves_and_stops_with_the_worker_workaround_off(app):
    with Gunicorn(workarounds__gthread_leave_reuse_port_group="false") as server:
        assert requests.get(server.url + "/api/system/health", timeout=5).json()["data"]["status"] == "ok"
    assert server.process.returncode == 0
