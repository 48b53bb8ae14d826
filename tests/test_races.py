"""Many clients at once against a live gunicorn: no lost update, no double rotation."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests
from sqlalchemy import func, select

from extensions import db
from models import OrderModel, PaymentModel, UserModel
from services import orders as orders_service
from services.payments import dev
from store import sessions
from tests.helpers import AUTH, PASSWORD
from tests.live import Gunicorn

pytestmark = pytest.mark.live


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
        sets = sessions.tracked(user_id)
    old = sessions.fingerprint(pair["refresh_token"])
    # one primary rotation: the session moved on by one generation
    with app.app_context():
        [record] = sessions.session_records(user_id).values()
    assert (record["g"], record["p"]) == (1, old)
    assert old not in sets["refresh_token"]
    # every racing answer continues the one chain: one new refresh token, no stale or duplicate member
    assert {p["refresh_token"] for p in issued} == {issued[0]["refresh_token"]}
    assert set(sets["refresh_token"]) == {sessions.fingerprint(issued[0]["refresh_token"])}
    access = {sessions.fingerprint(p["access_token"]) for p in issued}
    assert len(access) == len(issued)
    assert set(sets["access_token"]) <= access | {sessions.fingerprint(pair["access_token"])}
    assert all(score > time.time() for score in sets["access_token"].values())

    assert len(sets["access_token"]) == 16  # a session keeps its 16 newest access tokens
    for p in issued:  # and exactly those work
        me = requests.get(server.url + f"{AUTH}/me", headers={"Authorization": f"Bearer {p['access_token']}"})
        assert me.status_code == (200 if sessions.fingerprint(p["access_token"]) in sets["access_token"] else 401)
    last = post(server, f"{AUTH}/refresh", json={"refresh_token": issued[0]["refresh_token"]})
    assert last.status_code == 200, last.json()


def test_fifty_parallel_wrong_logins_count_exactly(app, server):
    post(server, f"{AUTH}/register", json={"email": "guess@example.com", "password": PASSWORD})
    answers = in_parallel(50, lambda: post(server, f"{AUTH}/login",
                                           json={"email": "guess@example.com", "password": "wrong password"}))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [423] * 45
    right = post(server, f"{AUTH}/login", json={"email": "guess@example.com", "password": PASSWORD})
    assert right.status_code == 423


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


def test_gunicorn_lets_the_app_refuse_a_long_url_or_header_with_the_envelope(server):
    url = requests.get(server.url + "/api/system/health?pad=" + "a" * 5000, timeout=10)
    assert (url.status_code, url.json()["code"]) == (414, 10022)
    header = requests.get(server.url + "/api/system/health", headers={"X-Padding": "a" * 12000}, timeout=10)
    assert (header.status_code, header.json()["code"]) == (431, 10023)
    beyond = requests.get(server.url + "/api/system/health?pad=" + "a" * 9000, timeout=10)
    assert beyond.status_code == 414  # past gunicorn's own limit: its answer, as the README says


def test_huge_headers_are_refused_by_the_server_without_a_5xx(server):
    try:
        response = requests.get(server.url + "/api/system/health", headers={"X-Big": "a" * (10 * 1024 * 1024)},
                                timeout=30)
    except requests.ConnectionError:
        return  # the server closed the connection on the oversized header: refused, nothing served
    assert 400 <= response.status_code < 500


@pytest.fixture(scope="module")
def racing_server(app):
    """Orders that fall due a few seconds after creation, so expiry can race payment and cancel."""
    with Gunicorn(workers=2, threads=8, order__expire_seconds=4) as live:
        yield live


def test_pay_cancel_and_expire_racing_on_100_orders_end_in_one_state_each(app, racing_server):
    server = racing_server
    pair = post(server, f"{AUTH}/register", json={"email": "buyer@example.com", "password": PASSWORD}).json()["data"]
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    product = requests.get(server.url + "/api/client/order/products").json()["data"]["items"][0]["id"]
    created = in_parallel(100, lambda: post(server, "/api/client/order/create", headers=headers,
                                            json={"product_id": product}))
    orders = [answer.json()["data"] for answer in created]
    assert len({order["order_no"] for order in orders}) == 100
    due = max(time.time(), min(datetime.fromisoformat(o["expires_at"]).timestamp() for o in orders))
    time.sleep(max(0.0, due - time.time() - 0.05))

    def pay(order):
        body = dev.notification_body(order["order_no"], "tx-" + order["order_no"], order["amount"], order["currency"])
        return post(server, dev.NOTIFY_PATH, data=body, headers={
            "Content-Type": "application/json", dev.HEADER: dev.sign(body, app.config["SETTINGS"].payment.dev.secret)})

    def cancel(order):
        return post(server, f"/api/client/order/cancel/{order['order_no']}", headers=headers)

    def sweep(_):
        with app.app_context():
            return orders_service.expire_due_orders()

    jobs = [(pay, o) for o in orders] + [(cancel, o) for o in orders] + [(sweep, None)] * 10
    random.shuffle(jobs)
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda job: (job[0].__name__, job[1], job[0](job[1])), jobs))
    with app.app_context():
        orders_service.expire_due_orders()  # whatever is still PENDING and past due

    payments_acknowledged = [r for name, _, r in results if name == "pay"]
    # every payment taken in, none lost
    assert all(r.status_code == 200 for r in payments_acknowledged), [r.text for r in payments_acknowledged
                                                                      if r.status_code != 200]
    cancelled_ok = {o["order_no"] for name, o, r in results if name == "cancel" and r.status_code == 200}
    assert all(r.status_code in (200, 409) for name, _, r in results if name == "cancel")
    with app.app_context():
        stored = {o.order_no: o for o in db.session.scalars(select(OrderModel).where(
            OrderModel.order_no.in_([o["order_no"] for o in orders])))}
        payments = {p.order_no: p for p in db.session.scalars(select(PaymentModel))}
    assert len(payments) == 100  # one row per order: no double, no loss
    outcomes = Counter()
    for order_no, order in stored.items():
        assert order.status in ("PAID", "CANCELLED", "EXPIRED")
        outcomes[order.status] += 1
        payment = payments[order_no]
        if order.status == "PAID":
            assert payment.outcome == "paid" and order.transaction_id == payment.transaction_id
            assert order.paid_at is not None
        else:
            assert payment.outcome == "needs_refund" and order.paid_at is None
        assert (order.status == "CANCELLED") == (order_no in cancelled_ok)
    print(f"race outcomes: {dict(outcomes)}")


def test_one_idempotency_key_from_20_threads_makes_one_order(app, server):
    pair = post(server, f"{AUTH}/register", json={"email": "idem@example.com", "password": PASSWORD}).json()["data"]
    headers = {"Authorization": f"Bearer {pair['access_token']}", "Idempotency-Key": "checkout-42"}
    product = requests.get(server.url + "/api/client/order/products").json()["data"]["items"][0]["id"]
    answers = in_parallel(20, lambda: post(server, "/api/client/order/create", headers=headers,
                                           json={"product_id": product, "quantity": 2}))
    assert sorted(answer.status_code for answer in answers) == [200] * 19 + [201]
    assert len({answer.json()["data"]["order_no"] for answer in answers}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OrderModel)) == 1
