"""Orders as a client lives them: the catalog, creating, paying, listing, cancelling, expiry,
idempotent retries, and races that must end with exactly one winner."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy
from sqlalchemy import select, text

import codes
from extensions import db, redis_store
from models import OrderModel
from models.base import utcnow
from schemas.order import OrderSchema
from services import orders, payments
from services.payments.notify import handle_notification
from store import order_cache, user_snapshot
from tests.helpers import (
    ORDER,
    bearer,
    create,
    created,
    dev_signature,
    notify_dev,
    payments_of,
    register,
    status_of,
    wait_until,
)


def stored_status(app, order_no):
    """The row as the database holds it, bypassing expire-on-read."""
    with app.app_context():
        return db.session.scalar(select(OrderModel.status).where(OrderModel.order_no == order_no))


# --- catalog -------------------------------------------------------------------------------------

def test_products_are_listed_without_sign_in_in_english_and_chinese(client):
    english = client.get(f"{ORDER}/products")
    assert english.status_code == 200
    items = english.get_json()["data"]["items"]
    assert {"id": "basic-monthly", "name": "Basic plan, 1 month", "price": 990, "currency": "CNY"} in items
    assert "legacy-lifetime" not in [item["id"] for item in items]  # retired: active: false
    chinese = client.get(f"{ORDER}/products?lang=zh").get_json()["data"]["items"]
    assert [item["id"] for item in chinese] == [item["id"] for item in items]
    assert {item["id"]: item["name"] for item in chinese}["basic-monthly"] == "基础版（1 个月）"
    assert [item["price"] for item in chinese] == [item["price"] for item in items]


def test_a_product_named_only_in_english_falls_back_to_english(make_app):
    app = make_app(products=[{"id": "tea", "name": {"en": "Tea"}, "price": 300, "currency": "CNY"}])
    items = app.test_client().get(f"{ORDER}/products?lang=zh").get_json()["data"]["items"]
    assert items == [{"id": "tea", "name": "Tea", "price": 300, "currency": "CNY"}]


# --- create, pay, read ---------------------------------------------------------------------------

def test_create_then_a_signed_dev_notification_turns_the_order_paid_in_status_and_list(app, client, auth_headers):
    order = created(client, auth_headers, product_id="pro-monthly", quantity=3)
    assert order["status"] == "PENDING"
    assert (order["amount"], order["currency"], order["quantity"]) == (3 * 2990, "CNY", 3)
    assert order["subject"] == "Pro plan, 1 month"
    assert order["order_no"][:8].isdigit() and len(order["order_no"]) == 20
    assert order["payment"]["provider"] == "dev"
    assert order["payment"]["params"]["amount"] == 3 * 2990
    assert order["paid_at"] is None and order["transaction_id"] is None
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"

    answer = notify_dev(client, app, order["order_no"], 3 * 2990, transaction_id="dev_txn_42")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["data"] == {"outcome": "paid", "order_no": order["order_no"]}

    paid = status_of(client, auth_headers, order["order_no"]).get_json()["data"]
    assert paid["status"] == "PAID" and paid["paid_at"] and paid["transaction_id"] == "dev_txn_42"
    assert paid["payment_provider"] == "dev"
    listed = client.get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]
    assert [(item["order_no"], item["status"]) for item in listed["items"]] == [(order["order_no"], "PAID")]
    assert payments_of(app, order["order_no"]) == [("dev_txn_42", "paid")]


def statements_during(app, call):
    """What call() returns, and how many SQL statements the app sent meanwhile."""
    sent = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: sent.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    sqlalchemy.event.listen(engine, "before_cursor_execute", listener)
    try:
        return call(), len(sent)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", listener)


def test_a_status_read_again_is_answered_from_redis_without_a_database_query(app, client, auth_headers):
    order = created(client, auth_headers)
    first, queries = statements_during(app, lambda: status_of(client, auth_headers, order["order_no"]))
    assert first.status_code == 200 and queries >= 1
    again, queries = statements_during(app, lambda: status_of(client, auth_headers, order["order_no"]))
    assert again.get_json() == first.get_json() and queries == 0
    assert again.get_json()["data"] == {key: value for key, value in order.items() if key != "payment"}


def test_a_cached_status_shows_a_cancel_and_a_payment_at_once(app, client, auth_headers):
    cancelled, paid = created(client, auth_headers), created(client, auth_headers)
    for order in (cancelled, paid):
        assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"
    assert client.post(f"{ORDER}/cancel/{cancelled['order_no']}", headers=auth_headers).status_code == 200
    assert notify_dev(client, app, paid["order_no"], paid["amount"], transaction_id="dev_cached").status_code == 200
    assert status_of(client, auth_headers, cancelled["order_no"]).get_json()["data"]["status"] == "CANCELLED"
    assert status_of(client, auth_headers, paid["order_no"]).get_json()["data"]["status"] == "PAID"


def test_a_reader_late_with_the_pending_row_cannot_hide_a_payment(app, client, auth_headers, user):
    order = created(client, auth_headers)
    with app.app_context():
        stale = orders.get_order(user["id"], order["order_no"])  # read before the payment commits...
    assert notify_dev(client, app, order["order_no"], order["amount"]).status_code == 200
    with app.app_context():
        assert stale.status == "PENDING"
        # ...and written to Redis after it, the way a status read stores it: refused, the PAID one stays
        order_cache.save_snapshot(user["id"], order["order_no"], OrderSchema().dump(stale), final=False)
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PAID"


def test_a_snapshot_is_the_owners_alone(app, client, auth_headers):
    order = created(client, auth_headers)
    assert status_of(client, auth_headers, order["order_no"]).status_code == 200
    intruder = bearer(register(client, "mallory@example.com")["access_token"])
    response = status_of(client, intruder, order["order_no"])
    assert response.status_code == 404 and response.get_json()["code"] == codes.ORDER_NOT_FOUND.code


def list_of(client, headers, query=""):
    return client.get(f"{ORDER}/list{query}", headers=headers).get_json()["data"]


def test_a_list_read_again_is_answered_from_redis_without_a_database_query(app, client, auth_headers):
    made = [created(client, auth_headers)["order_no"] for _ in range(3)]
    first, queries = statements_during(app, lambda: list_of(client, auth_headers))
    assert [item["order_no"] for item in first["items"]] == made[::-1] and queries >= 2
    again, queries = statements_during(app, lambda: list_of(client, auth_headers))
    assert again == first and queries == 0
    for query in ("?page=4", "?page_size=10"):  # only the first pages of the default size are kept
        list_of(client, auth_headers, query)
        _, queries = statements_during(app, lambda: list_of(client, auth_headers, query))  # noqa: B023
        assert queries >= 1, query


def test_a_cached_list_shows_a_new_order_a_cancel_and_a_payment_at_once(app, client, auth_headers):
    first = created(client, auth_headers)
    assert list_of(client, auth_headers)["total"] == 1 and list_of(client, auth_headers, "?status=PAID")["total"] == 0
    second = created(client, auth_headers)
    assert [item["order_no"] for item in list_of(client, auth_headers)["items"]] == [second["order_no"],
                                                                                   first["order_no"]]
    assert client.post(f"{ORDER}/cancel/{first['order_no']}", headers=auth_headers).status_code == 200
    assert [item["status"] for item in list_of(client, auth_headers)["items"]] == ["PENDING", "CANCELLED"]
    assert notify_dev(client, app, second["order_no"], second["amount"]).status_code == 200
    assert [item["status"] for item in list_of(client, auth_headers)["items"]] == ["PAID", "CANCELLED"]
    assert list_of(client, auth_headers, "?status=PAID")["total"] == 1


def test_a_page_read_before_a_write_began_is_not_stored_after_it(app, client, auth_headers, user):
    with app.app_context():
        _, version = order_cache.read_page(user["id"], "1:20:")  # a reader starts...
        stale = {"until": None, "page": {"items": [], "total": 0, "page": 1, "page_size": 20}}
    order = created(client, auth_headers)  # ...an order is made meanwhile...
    with app.app_context():
        assert not order_cache.save_page(user["id"], "1:20:", version, stale)  # ...its page is refused
    assert [item["order_no"] for item in list_of(client, auth_headers)["items"]] == [order["order_no"]]


def test_a_list_read_that_read_the_user_row_first_still_sees_a_create_that_ended_in_between(
        app, client, auth_headers, user, monkeypatch):
    created(client, auth_headers)
    with app.app_context():  # the user's snapshot has left Redis: the next request reads the users table first
        redis_store.client.delete(user_snapshot.SNAPSHOT(user["id"]))
    made = []
    read_order_page = order_cache.read_page

    def create_first(user_id, field):  # another device's create runs whole between the two reads
        if not made:
            with ThreadPoolExecutor(1) as other_device:
                made.append(other_device.submit(lambda: created(app.test_client(), auth_headers)).result()["order_no"])
        return read_order_page(user_id, field)

    monkeypatch.setattr(order_cache, "read_page", create_first)
    listed = [item["order_no"] for item in list_of(client, auth_headers)["items"]]
    monkeypatch.undo()
    kept = [item["order_no"] for item in list_of(client, auth_headers)["items"]]
    assert len(made) == 1 and made[0] in listed and kept == listed


def test_while_a_write_is_open_another_write_ending_does_not_let_pages_be_stored(app, client, auth_headers, user):
    with app.app_context():
        order_cache.begin_write(user["id"])  # a payment, say, between its begin and its commit
    created(client, auth_headers)  # a create begins and ends meanwhile
    _, queries = statements_during(app, lambda: [list_of(client, auth_headers) for _ in range(2)])
    assert queries >= 4  # nothing was kept: the payment's commit could make any page stale
    with app.app_context():
        order_cache.end_write(user["id"])
    list_of(client, auth_headers)
    _, queries = statements_during(app, lambda: list_of(client, auth_headers))
    assert queries == 0


def test_the_subject_is_in_the_language_of_the_request(client, auth_headers):
    order = created(client, {**auth_headers, "Accept-Language": "zh-CN"})
    assert order["subject"] == "基础版（1 个月）"


@pytest.mark.parametrize(("body", "field"), [
    ({"product_id": "basic-monthly", "quantity": 0}, "quantity"),
    ({"product_id": "basic-monthly", "quantity": 100}, "quantity"),
    ({"product_id": "basic-monthly", "quantity": "2"}, "quantity"),
    ({"quantity": 1}, "product_id"),
    ({"product_id": "basic-monthly", "price": 1}, "price"),  # the server computes every amount
    ({"product_id": "basic-monthly", "provider": "paypal"}, "provider"),
])
def test_create_refuses_bad_input_field_by_field(client, auth_headers, body, field):
    response = client.post(f"{ORDER}/create", json=body, headers=auth_headers)
    assert response.status_code == 422
    assert list(response.get_json()["data"]["fields"]) == [field]


@pytest.mark.parametrize("product_id", ["no-such-product", "legacy-lifetime"])
def test_an_unknown_or_retired_product_cannot_be_ordered(client, auth_headers, product_id):
    response = create(client, auth_headers, product_id=product_id)
    assert response.status_code == 404
    assert response.get_json()["code"] == codes.ORDER_PRODUCT_NOT_FOUND.code
    assert client.get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]["total"] == 0


def test_quantity_defaults_to_one(client, auth_headers):
    response = client.post(f"{ORDER}/create", json={"product_id": "basic-monthly"}, headers=auth_headers)
    assert response.status_code == 201
    assert (response.get_json()["data"]["quantity"], response.get_json()["data"]["amount"]) == (1, 990)


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/create"), ("get", "/status/20240101000000000000"), ("get", "/list"),
    ("post", "/cancel/20240101000000000000")])
def test_every_order_endpoint_but_products_needs_sign_in(client, method, path):
    response = getattr(client, method)(ORDER + path, json={"product_id": "basic-monthly"})
    assert response.status_code == 401
    assert response.get_json()["code"] == codes.AUTH_TOKEN_MISSING.code


def test_another_users_order_answers_exactly_like_a_missing_one(app, client, auth_headers):
    order = created(client, auth_headers)
    bob = bearer(register(client, "bob@example.com")["access_token"])
    missing = status_of(client, bob, "20990101000000000000")
    for response in (status_of(client, bob, order["order_no"]),
                     client.post(f"{ORDER}/cancel/{order['order_no']}", headers=bob)):
        assert response.status_code == 404 == missing.status_code
        assert response.get_json() == missing.get_json()
        assert response.get_json()["code"] == codes.ORDER_NOT_FOUND.code == 20001
    assert client.get(f"{ORDER}/list", headers=bob).get_json()["data"]["total"] == 0
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"


# --- list ----------------------------------------------------------------------------------------

def test_45_orders_page_newest_first_with_the_right_total_and_status_filter(client, auth_headers):
    made = [created(client, auth_headers)["order_no"] for _ in range(45)]
    for order_no in made[:5]:
        assert client.post(f"{ORDER}/cancel/{order_no}", headers=auth_headers).status_code == 200

    pages = [client.get(f"{ORDER}/list?page={page}&page_size=20", headers=auth_headers).get_json()["data"]
             for page in (1, 2, 3, 4)]
    assert [len(page["items"]) for page in pages] == [20, 20, 5, 0]
    assert {page["total"] for page in pages} == {45}
    assert [(page["page"], page["page_size"]) for page in pages] == [(1, 20), (2, 20), (3, 20), (4, 20)]
    listed = [item["order_no"] for page in pages for item in page["items"]]
    assert listed == list(reversed(made))  # newest first, none twice, none missing

    cancelled = client.get(f"{ORDER}/list?status=CANCELLED", headers=auth_headers).get_json()["data"]
    assert cancelled["total"] == 5 and {item["order_no"] for item in cancelled["items"]} == set(made[:5])
    pending = client.get(f"{ORDER}/list?status=PENDING&page=2&page_size=30&lang=zh", headers=auth_headers)
    assert pending.get_json()["data"]["total"] == 40 and len(pending.get_json()["data"]["items"]) == 10
    assert client.get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]["page_size"] == 20  # default


@pytest.mark.parametrize("query", ["page=0", "page_size=0", "page_size=101", "status=SHIPPED", "page=x"])
def test_list_refuses_bad_query_parameters(client, auth_headers, query):
    response = client.get(f"{ORDER}/list?{query}", headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["code"] == codes.VALIDATION_ERROR.code


# --- idempotency ---------------------------------------------------------------------------------

def test_the_same_idempotency_key_gives_the_same_order_and_another_body_is_refused(client, auth_headers):
    first = create(client, auth_headers, key="checkout-7f3a", quantity=2)
    again = create(client, auth_headers, key="checkout-7f3a", quantity=2)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["data"]["order_no"] == first.get_json()["data"]["order_no"]
    assert again.get_json()["data"]["payment"]["provider"] == "dev"

    changed = create(client, auth_headers, key="checkout-7f3a", quantity=3)
    assert changed.status_code == 409
    assert changed.get_json()["code"] == codes.ORDER_IDEMPOTENCY_CONFLICT.code
    assert client.get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]["total"] == 1

    bob = bearer(register(client, "bob@example.com")["access_token"])
    assert create(client, bob, key="checkout-7f3a", quantity=2).status_code == 201  # keys are per user


def test_a_replayed_key_after_payment_shows_the_paid_order_and_no_new_payment_request(app, client, auth_headers):
    order = created(client, auth_headers, key="k-1")
    assert notify_dev(client, app, order["order_no"], order["amount"]).status_code == 200
    again = create(client, auth_headers, key="k-1")
    assert again.status_code == 200
    assert again.get_json()["data"]["status"] == "PAID" and again.get_json()["data"]["payment"] is None


def test_idempotency_keys_that_differ_only_in_case_or_accent_are_different_keys(client, auth_headers):
    answers = [create(client, auth_headers, key=key) for key in ("Cart-1", "cart-1", "cart-1", "cärt-1")]
    assert [answer.status_code for answer in answers] == [201, 201, 200, 201]
    order_nos = [answer.get_json()["data"]["order_no"] for answer in answers]
    assert len(set(order_nos)) == 3 and order_nos[1] == order_nos[2]
    assert client.get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]["total"] == 3


@pytest.mark.parametrize("key", ["", "k" * 65])
def test_an_empty_or_overlong_idempotency_key_is_refused(client, auth_headers, key):
    response = create(client, auth_headers, key=key)
    assert response.status_code == 422
    assert list(response.get_json()["data"]["fields"]) == ["Idempotency-Key"]


def test_twenty_parallel_creates_with_one_key_make_one_order(app, auth_headers):
    start = threading.Barrier(20)

    def attempt(_):
        client = app.test_client()
        start.wait()
        return create(client, auth_headers, key="double-click", quantity=2)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(20)))
    assert sorted(answer.status_code for answer in answers) == [200] * 19 + [201]
    assert len({answer.get_json()["data"]["order_no"] for answer in answers}) == 1
    listed = app.test_client().get(f"{ORDER}/list", headers=auth_headers).get_json()["data"]
    assert listed["total"] == 1


# --- cancel and expiry ---------------------------------------------------------------------------

def test_a_pending_order_can_be_cancelled_once(client, auth_headers):
    order = created(client, auth_headers)
    cancelled = client.post(f"{ORDER}/cancel/{order['order_no']}", headers=auth_headers)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["data"]["status"] == "CANCELLED" and cancelled.get_json()["data"]["cancelled_at"]
    again = client.post(f"{ORDER}/cancel/{order['order_no']}", headers=auth_headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == codes.ORDER_INVALID_TRANSITION.code
    assert again.get_json()["data"] == {"status": "CANCELLED"}


def test_a_paid_order_cannot_be_cancelled(app, client, auth_headers):
    order = created(client, auth_headers)
    notify_dev(client, app, order["order_no"], order["amount"])
    response = client.post(f"{ORDER}/cancel/{order['order_no']}", headers=auth_headers)
    assert response.status_code == 409 and response.get_json()["data"] == {"status": "PAID"}
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PAID"


def test_an_order_expires_after_expire_seconds_and_is_never_shown_pending(make_app, user):
    app = make_app(order__expire_seconds=1)
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers)
    assert status_of(client, headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"  # cached
    assert list_of(client, headers, "?status=PENDING")["total"] == 1  # cached too
    time.sleep(1.2)
    assert stored_status(app, order["order_no"]) == "PENDING"  # no sweep has run...
    listed = client.get(f"{ORDER}/list?status=PENDING", headers=headers).get_json()["data"]
    assert listed["total"] == 0  # ...yet reading expires it
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert shown["status"] == "EXPIRED"
    assert stored_status(app, order["order_no"]) == "EXPIRED"
    cancel = client.post(f"{ORDER}/cancel/{order['order_no']}", headers=headers)
    assert cancel.status_code == 409 and cancel.get_json()["data"] == {"status": "EXPIRED"}


def test_a_past_due_order_is_listed_among_the_expired_before_any_sweep(make_app, user):
    app = make_app(order__expire_seconds=1)
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers)
    assert list_of(client, headers, "?status=EXPIRED")["total"] == 0
    time.sleep(1.2)
    expired = list_of(client, headers, "?status=EXPIRED")
    assert [(item["order_no"], item["status"]) for item in expired["items"]] == [(order["order_no"], "EXPIRED")]
    assert expired["total"] == 1 and stored_status(app, order["order_no"]) == "EXPIRED"


def test_expire_orders_sweeps_every_past_due_order_in_batches(app, make_app, user):
    short = make_app(order__expire_seconds=1)
    headers = bearer(user["access_token"])
    due = [created(short.test_client(), headers)["order_no"] for _ in range(5)]
    fresh = created(app.test_client(), headers)["order_no"]
    time.sleep(1.2)
    result = app.test_cli_runner().invoke(args=["expire-orders", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "Expired 5 order(s)." in result.output
    assert [stored_status(app, order_no) for order_no in due] == ["EXPIRED"] * 5
    assert stored_status(app, fresh) == "PENDING"
    again = app.test_cli_runner().invoke(args=["expire-orders"])
    assert "Expired 0 order(s)." in again.output


# --- races ---------------------------------------------------------------------------------------

def test_twenty_parallel_cancels_and_payments_leave_exactly_one_consistent_outcome(app, auth_headers):
    order = created(app.test_client(), auth_headers)
    order_no, amount = order["order_no"], order["amount"]
    start = threading.Barrier(20)

    def attempt(i):
        client = app.test_client()  # its own client; every request pushes its own app context
        start.wait()
        if i % 2:
            return "cancel", client.post(f"{ORDER}/cancel/{order_no}", headers=auth_headers)
        return "pay", notify_dev(client, app, order_no, amount, transaction_id=f"race_{i}")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(20)))
    cancels = sorted(response.status_code for kind, response in answers if kind == "cancel")
    pays = [response for kind, response in answers if kind == "pay"]
    assert all(response.status_code == 200 for response in pays), [r.get_json() for r in pays]
    outcomes = sorted(response.get_json()["data"]["outcome"] for response in pays)
    final = status_of(app.test_client(), auth_headers, order_no).get_json()["data"]
    stored = payments_of(app, order_no)
    assert len(stored) == 10  # every payment is on record, won or not

    if final["status"] == "PAID":
        assert cancels == [409] * 10
        assert outcomes == ["needs_refund"] * 9 + ["paid"]
        winner = [txn for txn, outcome in stored if outcome == "paid"]
        assert winner == [final["transaction_id"]] and final["cancelled_at"] is None
    else:
        assert final["status"] == "CANCELLED"
        assert cancels == [200] + [409] * 9
        assert outcomes == ["needs_refund"] * 10
        assert final["paid_at"] is None and final["transaction_id"] is None
    assert sorted(outcome for _, outcome in stored) == outcomes


def insert_orders(app, user_id, deadlines):
    """PENDING orders of user_id written straight into the table, one per deadline: thousands in a second."""
    now = utcnow()
    rows = [{"order_no": f"{now:%Y%m%d}{i:012d}", "user_id": user_id, "product_id": "basic-monthly", "quantity": 1,
             "amount": 990, "currency": "CNY", "subject": "Basic plan, 1 month", "status": "PENDING",
             "payment_provider": "dev", "created_at": now - timedelta(hours=2), "expires_at": deadline}
            for i, deadline in enumerate(deadlines)]
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(OrderModel.__table__.insert(), rows)
    return [row["order_no"] for row in rows]


def lock_waits(app):
    """How many transactions on the test database wait for a row lock right now."""
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p"
            " ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()")).scalar()


def test_a_payment_for_a_just_due_order_and_the_sweep_over_thousands_of_orders_both_finish(app, user):
    now = utcnow()
    due = range(0, 3000, 120)  # 25 past-due orders among 3000 pending ones
    deadlines = [now - timedelta(minutes=1) if i in due else now + timedelta(minutes=30) for i in range(3000)]
    deadlines[due[12]] = now - timedelta(hours=1)  # the paid one fell due first: the sweep reaches it first
    late = insert_orders(app, user["id"], deadlines)[due[12]]
    body = json.dumps({"order_no": late, "transaction_id": "dev_late", "amount": 990, "currency": "CNY"}).encode()
    signature = dev_signature(app.config["SETTINGS"].payment.dev.secret, body, int(time.time()))
    locked, go_on = threading.Event(), threading.Event()

    def pay():
        with app.app_context():
            orders.lock_for_payment(late)  # the notification has taken its order's lock...
            locked.set()
            go_on.wait(60)
            # ...and completes the same transaction while the sweep waits for that row
            return handle_notification(payments.get_provider("dev"), body, {"X-Dev-Signature": signature})

    def sweep():
        locked.wait(60)
        with app.app_context():
            return orders.expire_due_orders(batch_size=10)

    with ThreadPoolExecutor(2) as pool:
        paying, sweeping = pool.submit(pay), pool.submit(sweep)
        try:
            wait_until(lambda: lock_waits(app) > 0, 30, "the sweep waiting for the paid order's lock")
        finally:
            go_on.set()
        outcome, expired = paying.result(), sweeping.result()  # a deadlock (1213) raises here

    assert (outcome.outcome, outcome.order_no) == ("needs_refund", late)  # money after the deadline goes back
    assert expired == 24  # the other due orders, swept in three batches; the payment expired its own
    with app.app_context():
        statuses = Counter(db.session.scalars(select(OrderModel.status)))
    assert statuses == {"EXPIRED": 25, "PENDING": 2975}
    assert payments_of(app, late) == [("dev_late", "needs_refund")]


# --- the API document ----------------------------------------------------------------------------

def test_every_order_and_payment_endpoint_is_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert set(paths["/api/client/order/products"]) == {"get"}
    assert set(paths["/api/client/order/create"]) == {"post"}
    assert set(paths["/api/client/order/status/{order_no}"]) == {"get"}
    assert set(paths["/api/client/order/list"]) == {"get"}
    assert set(paths["/api/client/order/cancel/{order_no}"]) == {"post"}
    assert set(paths["/api/payment/notify/{provider}"]) == {"post"}
    create_op = paths["/api/client/order/create"]["post"]
    assert "201" in create_op["responses"] and create_op["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/api/client/order/products"]["get"]


def test_orders_table_has_the_indexes_the_queries_need(app):
    with app.app_context():
        rows = db.session.execute(text("SHOW INDEX FROM orders")).mappings().all()
    indexes: dict[str, list[str]] = {}
    for row in rows:
        indexes.setdefault(row["Key_name"], []).append(row["Column_name"])
    assert indexes["ix_orders_user_created"] == ["user_id", "created_at"]
    assert indexes["ix_orders_status_expires"] == ["status", "expires_at"]
    assert indexes["uq_orders_user_idempotency_key"] == ["user_id", "idempotency_key"]


def test_an_order_no_spelled_otherwise_names_no_order_and_the_status_follows_the_payment(app, client, auth_headers):
    """The column's collation ignores trailing spaces; an order_no is its 20 digits exactly."""
    order_no = created(client, auth_headers)["order_no"]
    missing = status_of(client, auth_headers, "20990101000000000000").get_json()
    for variant in (order_no + "%20", order_no + "%20%20", "%20" + order_no, order_no + "0", order_no[:-1]):
        assert status_of(client, auth_headers, variant).get_json() == missing
        assert client.post(f"{ORDER}/cancel/{variant}", headers=auth_headers).get_json() == missing
    misspelled = notify_dev(client, app, order_no + " ", 990, transaction_id="dev_txn_variant")
    assert misspelled.get_json()["code"] == codes.ORDER_NOT_FOUND.code
    assert stored_status(app, order_no) == "PENDING"

    assert notify_dev(client, app, order_no, 990).status_code == 200
    for spelling in (order_no, order_no + "%20"):
        status_of(client, auth_headers, spelling)
    assert status_of(client, auth_headers, order_no).get_json()["data"]["status"] == "PAID"


def test_the_provider_is_an_enabled_one_or_null_for_the_default_as_the_document_says(client, auth_headers):
    document = client.get("/api/openapi.json").get_json()
    assert document["components"]["schemas"]["PaymentProvider"]["enum"] == ["dev"]
    assert created(client, auth_headers, provider=None)["payment_provider"] == "dev"
    for refused in ("", "stripe", "DEV"):
        answer = create(client, auth_headers, provider=refused)
        assert answer.status_code == 422 and "provider" in answer.get_json()["data"]["fields"]


def test_a_snapshot_stored_by_a_release_with_fewer_fields_is_not_answered(app, client, auth_headers):
    order = created(client, auth_headers)
    assert status_of(client, auth_headers, order["order_no"]).status_code == 200  # its snapshot is stored now
    with app.app_context():
        user_id = db.session.scalar(select(OrderModel.user_id).where(OrderModel.order_no == order["order_no"]))
        key = order_cache.SNAPSHOT(user_id, order["order_no"])
        older = {k: v for k, v in json.loads(redis_store.client.get(key)).items() if k != "refunded_amount"}
        redis_store.client.set(key, json.dumps(older))
    shown = status_of(client, auth_headers, order["order_no"]).get_json()["data"]
    assert shown["refunded_amount"] == 0


def test_a_whole_number_written_with_a_point_is_the_same_integer(client, auth_headers):
    """JSON Schema 2020-12, which the document's OpenAPI 3.1 uses: 2.0 is the integer 2; 2.5 is not one."""
    assert created(client, auth_headers, quantity=2.0)["quantity"] == 2
    assert create(client, auth_headers, quantity=2.5).status_code == 422
    listed = client.get(f"{ORDER}/list", query_string={"page": "1.0", "page_size": "5.00"}, headers=auth_headers)
    assert listed.status_code == 200 and listed.get_json()["data"]["page_size"] == 5
    assert client.get(f"{ORDER}/list", query_string={"page": "1.5"}, headers=auth_headers).status_code == 422
