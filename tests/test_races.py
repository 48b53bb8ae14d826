"""Many clients at once against a live gunicorn: no lost update, no double rotation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from extensions import db
from models import UserModel
from services import token_store
from tests.conftest import PASSWORD
from tests.live import Gunicorn

AUTH = "/api/client/auth"


@pytest.fixture(scope="module")
def server(app):
    with Gunicorn(workers=2, threads=8, auth__rate_limits__login_per_email="1000/minute",
                  auth__rate_limits__login_per_ip="10000/minute") as live:
        yield live


def post(server, path, **kwargs):
    return requests.post(server.url + path, timeout=30, **kwargs)


def in_parallel(count, call):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_fifty_parallel_refreshes_of_one_token_rotate_it_once(app, server):
    pair = post(server, f"{AUTH}/register", json={"email": "race@example.com", "password": PASSWORD}).json()["data"]
    user_id = pair["user"]["id"]
    answers = in_parallel(50, lambda: post(server, f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}))

    assert {answer.status_code for answer in answers} <= {200, 401}
    issued = [answer.json()["data"] for answer in answers if answer.status_code == 200]
    assert issued, "inside the grace window every racing tab is served"
    with app.app_context():
        sets = token_store.tracked(user_id)
    old = token_store.fingerprint(pair["refresh_token"])
    assert list(sets["refresh_token_used"]) == [old]  # one primary rotation, remembered once
    assert old not in sets["refresh_token"]
    fresh = {token_store.fingerprint(p["refresh_token"]) for p in issued}
    assert set(sets["refresh_token"]) == fresh and len(fresh) == len(issued)  # no stale, no duplicate
    assert len(sets["access_token"]) == 1 + len(issued)
    assert all(score > time.time() for score in sets["access_token"].values())

    for p in issued:  # every pair handed out works
        me = requests.get(server.url + f"{AUTH}/me", headers={"Authorization": f"Bearer {p['access_token']}"})
        assert me.status_code == 200
        assert post(server, f"{AUTH}/refresh", json={"refresh_token": p["refresh_token"]}).status_code == 200


def test_fifty_parallel_wrong_logins_count_exactly(app, server):
    post(server, f"{AUTH}/register", json={"email": "guess@example.com", "password": PASSWORD})
    answers = in_parallel(50, lambda: post(server, f"{AUTH}/login",
                                           json={"email": "guess@example.com", "password": "wrong password"}))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [423] * 45
    with app.app_context():
        user = db.session.scalar(select(UserModel).where(UserModel.email == "guess@example.com"))
        assert user.failed_login_attempts == 5 and user.is_locked()


def test_parallel_registrations_of_one_email_create_one_account(app, server):
    answers = in_parallel(10, lambda: post(server, f"{AUTH}/register",
                                           json={"email": "twin@example.com", "password": PASSWORD}))
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * 9
    with app.app_context():
        assert len(db.session.scalars(select(UserModel).where(UserModel.email == "twin@example.com")).all()) == 1


def test_response_headers_do_not_leak_and_do_not_cache_tokens(server):
    health = requests.get(server.url + "/api/system/health")
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    assert health.headers.get("Server", "") in ("", "gunicorn")  # no version
    login = post(server, f"{AUTH}/register", json={"email": "hdr@example.com", "password": PASSWORD})
    assert login.headers["Cache-Control"] == "no-store"


def test_huge_headers_are_refused_by_the_server_without_a_5xx(server):
    try:
        response = requests.get(server.url + "/api/system/health", headers={"X-Big": "a" * (10 * 1024 * 1024)},
                                timeout=30)
    except requests.ConnectionError:
        return  # the server closed the connection on the oversized header: refused, nothing served
    assert 400 <= response.status_code < 500
