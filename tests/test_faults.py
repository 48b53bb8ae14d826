"""Outages: the service answers 503 quickly while a dependency is away, and
recovers by itself when it is back. Each test stops only servers it started."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections import Counter

import pytest
import requests
import sqlalchemy
from aiosmtpd.controller import Controller
from sqlalchemy import text

import codes
from extensions import db
from tests.conftest import PASSWORD, free_port
from tests.live import Gunicorn, MariaDBServer, RedisServer, wait_until

AUTH = "/api/client/auth"


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.cleanup()


def test_redis_outage_is_503_quickly_and_recovers_without_restarting_gunicorn(own_redis):
    with Gunicorn(redis__url=own_redis.url) as server:
        http = requests.Session()
        registered = http.post(server.url + f"{AUTH}/register", json={"email": "r@example.com", "password": PASSWORD})
        token = registered.json()["data"]["access_token"]
        me = lambda: http.get(server.url + f"{AUTH}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)  # noqa: E731
        assert me().status_code == 200

        own_redis.process.send_signal(signal.SIGSTOP)  # Redis hangs: connections open, no answers
        try:
            for _ in range(5):
                response, elapsed = timed(me)
                assert response.status_code == 503 and elapsed < 2
                assert response.json()["code"] == codes.SERVICE_UNAVAILABLE.code
            health, elapsed = timed(lambda: http.get(server.url + "/api/system/health", timeout=10))
            assert health.status_code == 503 and elapsed < 2
            assert health.json()["data"]["redis"] == "down" and health.json()["data"]["database"] == "ok"
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        wait_until(lambda: me().status_code == 200, seconds=10, what="recovery after SIGCONT")

        own_redis.stop()  # Redis gone: connections refused
        statuses = Counter()
        for _ in range(10):
            response, elapsed = timed(me)
            assert elapsed < 2
            statuses[response.status_code] += 1
            assert response.json()["code"] == codes.SERVICE_UNAVAILABLE.code
        login, _ = timed(lambda: http.post(server.url + f"{AUTH}/login", timeout=10,
                                           json={"email": "r@example.com", "password": PASSWORD}))
        assert login.status_code == 503
        assert statuses == {503: 10}

        own_redis.start()  # back, empty: old sessions are gone, new logins work
        wait_until(lambda: http.get(server.url + "/api/system/health", timeout=5).status_code == 200,
                   seconds=10, what="health after restart")
        assert me().status_code == 401
        relogin = http.post(server.url + f"{AUTH}/login", json={"email": "r@example.com", "password": PASSWORD})
        assert relogin.status_code == 200
        token = relogin.json()["data"]["access_token"]
        assert me().status_code == 200


def test_mariadb_outage_under_load_is_503_then_recovers_and_loses_nothing():
    mariadb = MariaDBServer().start()
    url = mariadb.url("flask_api_fault")
    try:
        sync = Gunicorn(database__url=url)
        import subprocess

        from tests.live import BIN, ROOT

        subprocess.run([str(BIN / "flask"), "--app", "app", "sync-schema", "--yes"], cwd=ROOT, env=sync.env,
                       check=True, capture_output=True)
        with Gunicorn(database__url=url, database__connect_timeout=1,
                      auth__rate_limits__login_per_ip="100000/minute") as server:
            results: list[tuple[str, int]] = []
            stop = threading.Event()

            def client(worker: int) -> None:
                http = requests.Session()
                n = 0
                while not stop.is_set():
                    email = f"load{worker}-{n}@example.com"
                    n += 1
                    try:
                        response = http.post(server.url + f"{AUTH}/register", timeout=10,
                                             json={"email": email, "password": PASSWORD})
                        results.append((email, response.status_code))
                        assert response.headers["Content-Type"] == "application/json"
                    except requests.RequestException:
                        results.append((email, -1))

            threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            mariadb.stop()
            time.sleep(3)
            mariadb.start()
            wait_until(lambda: requests.get(server.url + "/api/system/health", timeout=5).status_code == 200,
                       seconds=30, what="database recovery")
            time.sleep(2)
            stop.set()
            for thread in threads:
                thread.join()

        statuses = Counter(status for _, status in results)
        assert statuses[201] > 0 and statuses[503] > 0, statuses
        assert set(statuses) <= {201, 503}, statuses
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            stored = set(conn.execute(text("SELECT email FROM users")).scalars())
        engine.dispose()
        created = {email for email, status in results if status == 201}
        failed = {email for email, status in results if status == 503}
        assert created <= stored  # every 2xx is in the database
        # A COMMIT whose acknowledgement dies with the server reads as 503 although it took
        # effect; that can only be the one request in flight per client thread, and such a
        # row is whole: the account logs in.
        in_doubt = failed & stored
        assert len(in_doubt) <= len(threads), in_doubt
        with Gunicorn(database__url=url) as server:
            for email in in_doubt:
                login = requests.post(server.url + f"{AUTH}/login", json={"email": email, "password": PASSWORD})
                assert login.status_code == 200
    finally:
        mariadb.cleanup()


class SlowHandler:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(5)
        return "250 OK"


def test_a_slow_smtp_server_fails_within_the_timeout(make_app):
    controller = Controller(SlowHandler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        client = make_app(smtp__port=controller.port, smtp__timeout=1).test_client()
        response, elapsed = timed(lambda: client.post(f"{AUTH}/send-email-code", json={"email": "s@example.com"}))
        assert response.status_code == 503
        assert response.get_json()["code"] == codes.AUTH_EMAIL_SEND_FAILED.code
        assert elapsed < 3
    finally:
        controller.stop()


def test_an_smtp_server_that_never_greets_fails_within_the_timeout(make_app):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        client = make_app(smtp__port=silent.getsockname()[1], smtp__timeout=1).test_client()
        response, elapsed = timed(lambda: client.post(f"{AUTH}/send-email-code", json={"email": "s@example.com"}))
        assert response.status_code == 503 and elapsed < 3
        # the worker is not stuck: the next request is served
        assert client.get("/api/system/health").status_code == 200
    finally:
        silent.close()


def test_an_exhausted_pool_answers_503_after_the_pool_timeout(make_app, user):
    app = make_app(database__pool_size=1, database__max_overflow=0, database__pool_timeout=0.5)
    holder_ready = threading.Event()
    release = threading.Event()

    def hold_the_only_connection():
        with app.app_context():
            db.session.execute(text("SELECT 1"))
            holder_ready.set()
            release.wait(10)
            db.session.rollback()

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    try:
        holder_ready.wait(5)
        client = app.test_client()
        response, elapsed = timed(lambda: client.post(f"{AUTH}/login", json={
            "email": user["email"], "password": PASSWORD}))
        assert response.status_code == 503
        assert response.get_json()["code"] == codes.SERVICE_UNAVAILABLE.code
        assert elapsed < 2
    finally:
        release.set()
        holder.join()
    # the pool is free again: the same login goes through
    relogin = app.test_client().post(f"{AUTH}/login", json={"email": user["email"], "password": PASSWORD})
    assert relogin.status_code == 200
