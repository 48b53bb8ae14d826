"""Outages: the service answers 503 quickly while a dependency is away, and
recovers by itself when it is back. Each test stops only servers it started."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest
import requests
import sqlalchemy
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

import codes
from extensions import db
from models import OrderModel, PaymentModel
from scripts.processes import free_port
from services.payments import dev
from tests.helpers import AUTH, PASSWORD, bearer, register, wait_until
from tests.live import BIN, ROOT, Gunicorn, MariaDBServer, RedisServer

pytestmark = pytest.mark.live


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


def test_a_payment_arriving_while_redis_is_down_is_refused_whole_and_pays_when_delivered_again(make_app, own_redis):
    app = make_app(redis__url=own_redis.url)
    client = app.test_client()
    headers = bearer(register(client, "payer@example.com")["access_token"])
    order = client.post("/api/client/order/create", json={"product_id": "basic-monthly"},
                        headers=headers).get_json()["data"]
    assert client.get(f"/api/client/order/status/{order['order_no']}", headers=headers).status_code == 200
    body = dev.notification_body(order["order_no"], "tx-during-outage", order["amount"], order["currency"])
    deliver = lambda: client.post(dev.NOTIFY_PATH, data=body, headers={  # noqa: E731
        "Content-Type": "application/json", dev.HEADER: dev.sign(body, app.config["SETTINGS"].payment.dev.secret)})

    own_redis.process.send_signal(signal.SIGSTOP)  # the order's snapshot cannot be dropped now
    try:
        refused, elapsed = timed(deliver)
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert refused.status_code == 503 and elapsed < 2
    assert refused.get_json()["code"] == codes.SERVICE_UNAVAILABLE.code
    with app.app_context():  # the provider was told to retry, and nothing was kept meanwhile
        assert db.session.scalar(select(OrderModel.status).where(OrderModel.order_no == order["order_no"])) == "PENDING"
        assert db.session.scalar(select(func.count()).select_from(PaymentModel)) == 0

    assert deliver().get_json()["data"] == {"outcome": "paid", "order_no": order["order_no"]}
    shown = client.get(f"/api/client/order/status/{order['order_no']}", headers=headers).get_json()["data"]
    assert shown["status"] == "PAID" and shown["transaction_id"] == "tx-during-outage"


def test_mariadb_outage_under_load_is_503_then_recovers_and_loses_nothing():
    mariadb = MariaDBServer().start()
    url = mariadb.url("flask_api_fault")
    try:
        settings = {"database__url": url, "database__connect_timeout": 1}
        subprocess.run([str(BIN / "flask"), "--app", "app", "sync-schema", "--yes"], cwd=ROOT,
                       env=Gunicorn(**settings).env, check=True, capture_output=True)
        with Gunicorn(**settings) as server:
            token = requests.post(server.url + f"{AUTH}/register", json={
                "email": "buyer@example.com", "password": PASSWORD}).json()["data"]["access_token"]
            product = requests.get(server.url + "/api/client/order/products").json()["data"]["items"][0]["id"]

            def create(key: str) -> requests.Response:
                return requests.post(server.url + "/api/client/order/create", timeout=10, json={"product_id": product},
                                     headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

            results: list[tuple[str, int, str | None]] = []  # (idempotency key, status, order_no)
            stop = threading.Event()

            def client(worker: int) -> None:
                n = 0
                while not stop.is_set():
                    key = f"w{worker}-{n}"
                    n += 1
                    try:
                        response = create(key)
                        body = response.json()  # every answer is the envelope
                        results.append((key, response.status_code, (body["data"] or {}).get("order_no")))
                    except requests.RequestException:
                        results.append((key, -1, None))

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

            statuses = Counter(status for _, status, _ in results)
            print(f"mariadb outage: {len(results)} creates, {dict(statuses)}")
            assert statuses[201] > 0 and statuses[503] > 0, statuses
            assert set(statuses) <= {201, 503}, statuses
            engine = sqlalchemy.create_engine(url)
            with engine.connect() as conn:
                stored = dict(conn.execute(text("SELECT idempotency_key, order_no FROM orders")).all())
            engine.dispose()
            created = {key: order_no for key, status, order_no in results if status == 201}
            assert all(stored.get(key) == order_no for key, order_no in created.items())  # every 2xx is there
            # A COMMIT whose acknowledgement dies with the server reads as 503 although it took effect:
            # at most the one request in flight per client. The client's retry with its key finds it.
            in_doubt = [key for key, status, _ in results if status == 503 and key in stored]
            assert len(in_doubt) <= len(threads), in_doubt
            for key in in_doubt:
                retry = create(key)
                assert retry.status_code == 200 and retry.json()["data"]["order_no"] == stored[key]
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
