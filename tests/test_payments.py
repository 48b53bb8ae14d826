"""Payment notifications as each provider sends them: only genuine, fresh, exact ones pay an
order, each at most once, and every genuine one is kept, even when it comes too late."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import func, select, text
from werkzeug.serving import WSGIRequestHandler, make_server

import codes
from config import ConfigError
from extensions import db
from models import PaymentModel
from scripts.processes import free_port
from tests.helpers import (
    APP_ID,
    BEIJING,
    ORDER,
    STRIPE_KEY,
    alipay_notification,
    alipay_settings,
    bearer,
    create,
    created,
    dev_signature,
    notify_dev,
    payments_of,
    pem_pair,
    post_alipay,
    post_stripe,
    status_of,
    stripe_event,
    stripe_settings,
    stripe_signature,
)

# --- dev -----------------------------------------------------------------------------------------


def payment_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(PaymentModel))


def assert_untouched(app, client, headers, order_no):
    assert status_of(client, headers, order_no).get_json()["data"]["status"] == "PENDING"
    assert payments_of(app, order_no) == []


def test_the_same_notification_twice_gives_one_payment_row_and_one_transition(app, client, auth_headers):
    order = created(client, auth_headers)
    first = notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_dup")
    paid_at = status_of(client, auth_headers, order["order_no"]).get_json()["data"]["paid_at"]
    second = notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_dup")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json()["data"]["outcome"] == "paid"
    assert second.get_json()["data"] == {"outcome": "duplicate", "order_no": order["order_no"]}
    assert payments_of(app, order["order_no"]) == [("dev_dup", "paid")]
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["paid_at"] == paid_at


def test_one_transaction_id_for_a_second_order_is_refused_and_pays_nothing(app, client, auth_headers, caplog):
    first, second = created(client, auth_headers), created(client, auth_headers)
    assert notify_dev(client, app, first["order_no"], first["amount"], transaction_id="dev_once").status_code == 200
    conflict = notify_dev(client, app, second["order_no"], second["amount"], transaction_id="dev_once")
    assert conflict.status_code == 400
    assert conflict.get_json()["code"] == codes.PAYMENT_NOTIFICATION_INVALID.code
    assert_untouched(app, client, auth_headers, second["order_no"])
    assert payments_of(app, first["order_no"]) == [("dev_once", "paid")]
    assert any("conflicts with a stored payment" in record.getMessage() for record in caplog.records), caplog.records


def test_transaction_ids_that_differ_only_in_case_are_two_payments(app, client, auth_headers):
    first, second = created(client, auth_headers), created(client, auth_headers)
    # Stripe's ids are case-sensitive: pi_3Kx and pi_3kX are two charges, not a retry of one.
    for order, transaction_id in ((first, "pi_3KxAbC"), (second, "pi_3kXaBc")):
        answer = notify_dev(client, app, order["order_no"], order["amount"], transaction_id=transaction_id)
        assert answer.get_json()["data"] == {"outcome": "paid", "order_no": order["order_no"]}
    assert payments_of(app, first["order_no"]) == [("pi_3KxAbC", "paid")]
    assert payments_of(app, second["order_no"]) == [("pi_3kXaBc", "paid")]


def test_ten_parallel_deliveries_of_one_notification_pay_once(app, client, auth_headers):
    order = created(client, auth_headers)
    start = threading.Barrier(10)

    def deliver(_):
        own = app.test_client()
        start.wait()
        return notify_dev(own, app, order["order_no"], order["amount"], transaction_id="dev_burst")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(deliver, range(10)))
    assert [answer.status_code for answer in answers] == [200] * 10
    assert sorted(answer.get_json()["data"]["outcome"] for answer in answers) == ["duplicate"] * 9 + ["paid"]
    assert payments_of(app, order["order_no"]) == [("dev_burst", "paid")]


@pytest.mark.parametrize("forgery", ["other secret", "tampered body", "no header", "garbled header"])
def test_a_bad_signature_changes_nothing(app, client, auth_headers, forgery):
    order = created(client, auth_headers)
    if forgery == "other secret":
        answer = notify_dev(client, app, order["order_no"], order["amount"], secret="not-the-dev-secret")
    elif forgery == "tampered body":
        body = json.dumps({"order_no": order["order_no"], "transaction_id": "t", "amount": order["amount"],
                           "currency": "CNY"}).encode()
        signed = dev_signature(app.config["SETTINGS"].payment.dev.secret, body.replace(b'"t"', b'"u"'),
                               int(time.time()))  # genuine, but for another body
        answer = client.post("/api/payment/notify/dev", data=body, content_type="application/json",
                             headers={"X-Dev-Signature": signed})
    else:
        headers = {} if forgery == "no header" else {"X-Dev-Signature": "t=abc,v1"}
        answer = client.post("/api/payment/notify/dev", json={"order_no": order["order_no"]}, headers=headers)
    assert answer.status_code == 400
    assert answer.get_json()["code"] == codes.PAYMENT_SIGNATURE_INVALID.code
    assert_untouched(app, client, auth_headers, order["order_no"])


@pytest.mark.parametrize("header", [
    "t=\u00b2,v1=" + "0" * 64,  # "²": a digit to str.isdigit(), not to int()
    "t=" + "9" * 4301 + ",v1=" + "0" * 64,  # more digits than int() reads
    "t={now},v1=\u00e9",  # "é": hmac.compare_digest refuses non-ASCII text
    "t={now},v1=" + "0" * 63 + "\u00e9",
], ids=["superscript digit", "4301 digits", "non-ASCII signature", "non-ASCII in 64 characters"])
def test_a_junk_signature_header_is_refused_as_invalid_and_stores_nothing(app, client, auth_headers, header):
    order = created(client, auth_headers)
    body = json.dumps({"order_no": order["order_no"], "transaction_id": "dev_junk", "amount": order["amount"],
                       "currency": "CNY"}).encode()
    answer = client.post("/api/payment/notify/dev", data=body, content_type="application/json",
                         headers={"X-Dev-Signature": header.replace("{now}", str(int(time.time())))})
    assert answer.status_code == 400
    assert answer.get_json() == {"code": codes.PAYMENT_SIGNATURE_INVALID.code, "data": None,
                                 "msg": "The payment notification's signature is invalid."}
    assert payment_count(app) == 0
    assert_untouched(app, client, auth_headers, order["order_no"])


@pytest.mark.parametrize("offset", [-301, -3600, 301])
def test_a_replayed_or_future_timestamp_changes_nothing(app, client, auth_headers, offset):
    order = created(client, auth_headers)
    answer = notify_dev(client, app, order["order_no"], order["amount"], timestamp=int(time.time()) + offset)
    assert answer.status_code == 400
    assert answer.get_json()["code"] == codes.PAYMENT_NOTIFICATION_EXPIRED.code
    assert_untouched(app, client, auth_headers, order["order_no"])


@pytest.mark.parametrize(("amount_delta", "currency"), [(-1, "CNY"), (100, "CNY"), (0, "USD")])
def test_a_wrong_amount_or_currency_is_kept_as_amount_mismatch_and_pays_nothing(app, client, auth_headers,
                                                                                 amount_delta, currency):
    order = created(client, auth_headers)
    answer = notify_dev(client, app, order["order_no"], order["amount"] + amount_delta, currency=currency,
                        transaction_id="dev_short")
    assert answer.status_code == 400
    assert answer.get_json()["code"] == codes.PAYMENT_AMOUNT_MISMATCH.code
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"
    assert payments_of(app, order["order_no"]) == [("dev_short", "amount_mismatch")]
    # The right payment still goes through afterwards.
    assert notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_full").status_code == 200
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PAID"


def test_a_signed_but_malformed_notification_is_refused_and_not_stored(app, client):
    answer = notify_dev(client, app, None, None, body=b'{"order_no": "1", "amount": "lots"}')
    assert answer.status_code == 400
    assert answer.get_json()["code"] == codes.PAYMENT_NOTIFICATION_INVALID.code
    assert payment_count(app) == 0


def test_a_payment_after_expiry_is_kept_as_needs_refund_and_acknowledged(make_app, user):
    app = make_app(order__expire_seconds=1)
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers)
    time.sleep(1.2)
    answer = notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_late")
    assert answer.status_code == 200
    assert answer.get_json()["data"] == {"outcome": "needs_refund", "order_no": order["order_no"]}
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert shown["status"] == "EXPIRED" and shown["paid_at"] is None
    assert payments_of(app, order["order_no"]) == [("dev_late", "needs_refund")]


def test_a_payment_for_a_cancelled_or_already_paid_order_is_kept_as_needs_refund(app, client, auth_headers):
    cancelled = created(client, auth_headers)
    client.post(f"{ORDER}/cancel/{cancelled['order_no']}", headers=auth_headers)
    answer = notify_dev(client, app, cancelled["order_no"], cancelled["amount"], transaction_id="dev_c")
    assert answer.get_json()["data"]["outcome"] == "needs_refund"
    assert status_of(client, auth_headers, cancelled["order_no"]).get_json()["data"]["status"] == "CANCELLED"

    paid = created(client, auth_headers)
    notify_dev(client, app, paid["order_no"], paid["amount"], transaction_id="dev_p1")
    twice = notify_dev(client, app, paid["order_no"], paid["amount"], transaction_id="dev_p2")
    assert twice.status_code == 200 and twice.get_json()["data"]["outcome"] == "needs_refund"
    assert status_of(client, auth_headers, paid["order_no"]).get_json()["data"]["transaction_id"] == "dev_p1"
    assert payments_of(app, paid["order_no"]) == [("dev_p1", "paid"), ("dev_p2", "needs_refund")]


def test_a_payment_for_an_unknown_order_is_kept_and_answered_404(app, client):
    answer = notify_dev(client, app, "20990101123456789012", 990, transaction_id="dev_ghost")
    assert answer.status_code == 404
    assert answer.get_json()["code"] == codes.ORDER_NOT_FOUND.code
    assert payments_of(app, "20990101123456789012") == [("dev_ghost", "unknown_order")]


@pytest.mark.parametrize("provider", ["paypal", "stripe", "alipay"])
def test_a_provider_that_is_not_enabled_is_404(client, provider):
    answer = client.post(f"/api/payment/notify/{provider}", data=b"{}", content_type="application/json")
    assert answer.status_code == 404
    assert answer.get_json()["code"] == codes.PAYMENT_PROVIDER_NOT_FOUND.code


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass  # the app writes its own access line


@pytest.fixture
def live_url(app):
    """The session app served over real HTTP on loopback, as `flask pay-order` expects a running service."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_pay_order_command_pays_an_order_through_the_running_service(app, client, auth_headers, live_url):
    order = created(client, auth_headers)
    result = app.test_cli_runner().invoke(args=["pay-order", order["order_no"], "--url", live_url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 ") and '"paid"' in result.output
    shown = status_of(client, auth_headers, order["order_no"]).get_json()["data"]
    assert shown["status"] == "PAID" and shown["transaction_id"].startswith("dev_")

    again = app.test_cli_runner().invoke(args=["pay-order", order["order_no"], "--url", live_url,
                                               "--transaction-id", shown["transaction_id"]])
    assert again.exit_code == 0 and '"duplicate"' in again.output


def test_pay_order_command_says_plainly_what_is_wrong(app):
    unknown = app.test_cli_runner().invoke(args=["pay-order", "20990101000000000000"])
    assert unknown.exit_code != 0 and "no order 20990101000000000000" in unknown.output


def test_pay_order_command_reports_a_service_that_does_not_answer(app, client, auth_headers):
    order = created(client, auth_headers)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = app.test_cli_runner().invoke(args=["pay-order", order["order_no"], "--url", url])
    assert result.exit_code != 0 and "did not answer" in result.output
    assert status_of(client, auth_headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"


# --- stripe --------------------------------------------------------------------------------------


class StripeStub:
    """Stripe's API on loopback: records each request, answers POST /v1/checkout/sessions."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                stub.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "form": dict(parse_qsl(body))})
                session_id = f"cs_test_{len(stub.requests)}"
                answer = json.dumps({"id": session_id, "object": "checkout.session",
                                     "url": f"https://checkout.stripe.test/c/pay/{session_id}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)


@pytest.fixture
def stripe_stub():
    stub = StripeStub()
    stub.thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


@pytest.fixture
def stripe_app(make_app, stripe_stub):
    return make_app(**stripe_settings(stripe_stub.url))


def test_checkout_session_creation_reaches_stripe_with_the_amount_and_order_no(stripe_app, stripe_stub, user):
    client = stripe_app.test_client()
    answer = create(client, bearer(user["access_token"]), product_id="pro-monthly", quantity=2, provider="stripe")
    assert answer.status_code == 201, answer.get_json()
    order = answer.get_json()["data"]
    assert order["payment"] == {"provider": "stripe", "pay_url": "https://checkout.stripe.test/c/pay/cs_test_1",
                                "params": {"session_id": "cs_test_1"}}
    [sent] = stripe_stub.requests
    form = sent["form"]
    assert sent["path"] == "/v1/checkout/sessions"
    assert sent["headers"]["Authorization"] == f"Bearer {STRIPE_KEY}"
    assert sent["headers"]["Idempotency-Key"] == f"checkout-{order['order_no']}-{sent['form']['expires_at']}"
    assert form["metadata[order_no]"] == order["order_no"] == form["client_reference_id"]
    unit, quantity = int(form["line_items[0][price_data][unit_amount]"]), int(form["line_items[0][quantity]"])
    assert unit * quantity == order["amount"] == 2 * 2990
    assert form["line_items[0][price_data][currency]"] == "cny"
    assert form["mode"] == "payment"
    # 30 min orders are shorter than Stripe's shortest session: it ends as soon after as Stripe
    # allows, rounded up to 5 minutes so that a retry soon after sends the same params
    created_at = datetime.fromisoformat(order["created_at"]).timestamp()
    assert created_at + 31 * 60 <= int(form["expires_at"]) <= created_at + 36 * 60
    assert int(form["expires_at"]) % 300 == 0


def test_a_checkout_session_expires_with_its_order_when_stripe_allows_it(make_app, stripe_stub, user):
    app = make_app(**stripe_settings(stripe_stub.url), order__expire_seconds=3600)
    order = created(app.test_client(), bearer(user["access_token"]), provider="stripe")
    expires_at = datetime.fromisoformat(order["expires_at"])
    assert int(stripe_stub.requests[0]["form"]["expires_at"]) == int(expires_at.timestamp())


def test_when_stripe_is_unreachable_the_client_retries_with_its_key_and_gets_the_same_order(
        make_app, stripe_app, stripe_stub, user):
    headers = bearer(user["access_token"])
    down = make_app(**stripe_settings(f"http://127.0.0.1:{free_port()}"))  # nothing listens there
    failed = create(down.test_client(), headers, provider="stripe", key="pay-once")
    assert failed.status_code == 502
    assert failed.get_json()["code"] == codes.PAYMENT_PROVIDER_ERROR.code
    retried = create(stripe_app.test_client(), headers, provider="stripe", key="pay-once")
    assert retried.status_code == 200
    assert retried.get_json()["data"]["order_no"] == failed.get_json()["data"]["order_no"]
    assert retried.get_json()["data"]["payment"]["pay_url"].startswith("https://checkout.stripe.test/")


def test_a_retry_late_in_the_orders_life_still_asks_for_a_session_stripe_accepts(
        app, make_app, stripe_app, stripe_stub, user):
    """Stripe refuses a session ending less than 30 minutes ahead; the order's own clock may be
    further along than that when the client retries after a failure."""
    headers = bearer(user["access_token"])
    down = make_app(**stripe_settings(f"http://127.0.0.1:{free_port()}"))
    order_no = create(down.test_client(), headers, provider="stripe", key="late").get_json()["data"]["order_no"]
    with app.app_context():  # the client comes back 10 minutes later
        db.session.execute(text("UPDATE orders SET created_at = created_at - INTERVAL 10 MINUTE,"
                                " expires_at = expires_at - INTERVAL 10 MINUTE WHERE order_no = :no"), {"no": order_no})
        db.session.commit()
    retried = create(stripe_app.test_client(), headers, provider="stripe", key="late")
    assert retried.status_code == 200, retried.get_json()
    [sent] = stripe_stub.requests
    assert int(sent["form"]["expires_at"]) >= time.time() + 30 * 60
    # one idempotency key never travels with two different session ends (Stripe would refuse it)
    assert sent["headers"]["Idempotency-Key"] == f"checkout-{order_no}-{sent['form']['expires_at']}"


def test_a_webhook_signed_the_stripe_way_pays_the_order(stripe_app, user):
    client, headers = stripe_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="stripe")
    body = stripe_event(order["order_no"], order["amount"])
    answer = post_stripe(client, body, stripe_signature(body))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["data"] == {"outcome": "paid", "order_no": order["order_no"]}
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert (shown["status"], shown["payment_provider"], shown["transaction_id"]) == ("PAID", "stripe", "pi_test_1")
    assert post_stripe(client, body, stripe_signature(body)).get_json()["data"]["outcome"] == "duplicate"
    assert payments_of(stripe_app, order["order_no"]) == [("pi_test_1", "paid")]


@pytest.mark.parametrize("forgery", ["other secret", "tampered body", "old timestamp", "future timestamp",
                                     "no header", "non-ASCII signature"])
def test_a_forged_or_stale_stripe_webhook_is_refused(stripe_app, user, forgery):
    client, headers = stripe_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="stripe")
    body = stripe_event(order["order_no"], order["amount"])
    signature = {"other secret": stripe_signature(body, secret="whsec_forged"),
                 "tampered body": stripe_signature(stripe_event(order["order_no"], 1)),
                 "old timestamp": stripe_signature(body, timestamp=int(time.time()) - 600),
                 "future timestamp": stripe_signature(body, timestamp=int(time.time()) + 600),  # genuine, held back
                 "no header": "",
                 "non-ASCII signature": f"t={int(time.time())},v1=\u00e9"}[forgery]
    answer = post_stripe(client, body, signature)
    assert answer.status_code == 400
    stale = forgery in ("old timestamp", "future timestamp")
    expected = codes.PAYMENT_NOTIFICATION_EXPIRED if stale else codes.PAYMENT_SIGNATURE_INVALID
    assert answer.get_json()["code"] == expected.code
    assert_untouched(stripe_app, client, headers, order["order_no"])


def test_stripe_events_that_are_not_payments_are_acknowledged_and_ignored(stripe_app, user):
    client, headers = stripe_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="stripe")
    body = stripe_event(order["order_no"], order["amount"], event_type="checkout.session.expired")
    answer = post_stripe(client, body, stripe_signature(body))
    assert answer.status_code == 200 and answer.get_json()["data"]["outcome"] == "ignored"
    assert_untouched(stripe_app, client, headers, order["order_no"])


def test_a_stripe_payment_in_the_wrong_currency_is_amount_mismatch(stripe_app, user):
    client, headers = stripe_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="stripe")
    body = stripe_event(order["order_no"], order["amount"], currency="usd")
    answer = post_stripe(client, body, stripe_signature(body))
    assert answer.status_code == 400 and answer.get_json()["code"] == codes.PAYMENT_AMOUNT_MISMATCH.code
    assert payments_of(stripe_app, order["order_no"]) == [("pi_test_1", "amount_mismatch")]


# --- alipay --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alipay_keys():
    """The merchant app's key pair and Alipay's, both made for this test run."""
    return {"app": pem_pair(), "alipay": pem_pair()}


@pytest.fixture
def alipay_app(make_app, alipay_keys):
    return make_app(**alipay_settings(alipay_keys))


def test_the_alipay_page_pay_url_is_signed_with_the_app_key(alipay_app, alipay_keys, user):
    order = created(alipay_app.test_client(), bearer(user["access_token"]), provider="alipay")
    url = urlsplit(order["payment"]["pay_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
    params = dict(parse_qsl(url.query))
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign")
    alipay_keys["app"][0].public_key().verify(base64.b64decode(params["sign"]), content.encode(),
                                              padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    assert (params["app_id"], params["method"], params["sign_type"]) == (APP_ID, "alipay.trade.page.pay", "RSA2")
    assert params["notify_url"] == "https://api.shop.example/api/payment/notify/alipay"
    assert params["return_url"] == f"https://shop.example/orders/{order['order_no']}"
    biz = json.loads(params["biz_content"])
    assert (biz["out_trade_no"], biz["total_amount"]) == (order["order_no"], "9.90")
    expires = datetime.fromisoformat(order["expires_at"]).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    assert biz["time_expire"] == expires


def test_an_alipay_notification_signed_with_the_test_key_pays_and_is_answered_success(alipay_app, alipay_keys,
                                                                                       user):
    client, headers = alipay_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    notification = alipay_notification(alipay_keys["alipay"][0], order["order_no"], "9.90")
    answer = post_alipay(client, notification)
    assert (answer.status_code, answer.get_data(as_text=True), answer.mimetype) == (200, "success", "text/plain")
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert (shown["status"], shown["transaction_id"]) == ("PAID", "2024010122001400000000000001")
    again = post_alipay(client, alipay_notification(alipay_keys["alipay"][0], order["order_no"], "9.90",
                                                    trade_status="TRADE_FINISHED"))
    assert again.get_data(as_text=True) == "success"  # Alipay's later TRADE_FINISHED: same trade, no effect
    assert payments_of(alipay_app, order["order_no"]) == [("2024010122001400000000000001", "paid")]


@pytest.mark.parametrize("tampering", ["amount changed", "signed by another key", "sign removed", "wrong app_id",
                                       "old notify_time"])
def test_a_tampered_or_foreign_alipay_notification_is_refused_with_fail(alipay_app, alipay_keys, user, tampering):
    client, headers = alipay_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    genuine = alipay_keys["alipay"][0]
    if tampering == "amount changed":
        notification = {**alipay_notification(genuine, order["order_no"], "9.90"), "total_amount": "0.01"}
    elif tampering == "signed by another key":
        notification = alipay_notification(alipay_keys["app"][0], order["order_no"], "9.90")
    elif tampering == "sign removed":
        notification = {k: v for k, v in alipay_notification(genuine, order["order_no"], "9.90").items() if k != "sign"}
    elif tampering == "wrong app_id":
        notification = alipay_notification(genuine, order["order_no"], "9.90", app_id="2021999999999999")
    else:
        old = (datetime.now(BEIJING) - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
        notification = alipay_notification(genuine, order["order_no"], "9.90", notify_time=old)
    answer = post_alipay(client, notification)
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, "fail")
    assert_untouched(alipay_app, client, headers, order["order_no"])


def test_a_signed_alipay_notification_for_less_money_is_kept_as_amount_mismatch(alipay_app, alipay_keys, user):
    client, headers = alipay_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    answer = post_alipay(client, alipay_notification(alipay_keys["alipay"][0], order["order_no"], "0.99"))
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, "fail")
    assert status_of(client, headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"
    assert payments_of(alipay_app, order["order_no"]) == [("2024010122001400000000000001", "amount_mismatch")]


def test_an_alipay_trade_still_waiting_for_the_buyer_is_acknowledged_and_not_stored(alipay_app, alipay_keys, user):
    client, headers = alipay_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    notification = alipay_notification(alipay_keys["alipay"][0], order["order_no"], "9.90",
                                       trade_status="WAIT_BUYER_PAY")
    assert post_alipay(client, notification).get_data(as_text=True) == "success"
    assert_untouched(alipay_app, client, headers, order["order_no"])


def test_alipay_is_refused_for_a_product_priced_in_another_currency_and_no_order_is_made(make_app, alipay_keys,
                                                                                          user):
    app = make_app(**alipay_settings(alipay_keys), products=[
        {"id": "plan-usd", "name": {"en": "Plan (USD)"}, "price": 500, "currency": "USD"},
        {"id": "plan-cny", "name": {"en": "Plan (CNY)"}, "price": 990, "currency": "CNY"}])
    client, headers = app.test_client(), bearer(user["access_token"])
    refused = create(client, headers, product_id="plan-usd", provider="alipay", key="usd-1")
    assert refused.status_code == 400  # Alipay would have charged 5.00 yuan for 5.00 dollars
    assert refused.get_json() == {"code": codes.ORDER_CURRENCY_NOT_SUPPORTED.code,
                                  "data": {"currency": "USD", "provider": "alipay"},
                                  "msg": "This payment provider does not accept this product's currency."}
    assert client.get(f"{ORDER}/list", headers=headers).get_json()["data"]["total"] == 0
    # The same key with a provider that takes dollars makes the order; Alipay still takes yuan.
    assert created(client, headers, product_id="plan-usd", provider="dev", key="usd-1")["currency"] == "USD"
    assert created(client, headers, product_id="plan-cny", provider="alipay")["payment"]["provider"] == "alipay"


def test_alipay_keys_may_be_the_bare_base64_alipays_tool_prints(make_app, alipay_keys, user):
    def bare(pem: str) -> str:
        return "".join(pem.strip().splitlines()[1:-1])

    app = make_app(**{"payment__providers": ["dev", "alipay"], "payment__alipay__app_id": APP_ID,
                      "payment__alipay__private_key": bare(alipay_keys["app"][1]),
                      "payment__alipay__public_key": bare(alipay_keys["alipay"][2])})
    client = app.test_client()
    order = created(client, bearer(user["access_token"]), provider="alipay")
    answer = post_alipay(client, alipay_notification(alipay_keys["alipay"][0], order["order_no"], "9.90"))
    assert answer.get_data(as_text=True) == "success"


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "message"), [
    ({"payment__providers": ["dev", "stripe"]}, "payment.stripe.secret_key: required while stripe is in"),
    ({"payment__default": "alipay"}, "payment.default: must be one of payment.providers"),
    ({"payment__providers": ["dev", "alipay"], "payment__alipay__app_id": "1", "payment__alipay__private_key": "x",
      "payment__alipay__public_key": "y"}, "payment.alipay: private_key is not a usable RSA private key"),
])
def test_an_enabled_provider_without_usable_keys_stops_the_start(make_app, settings, message):
    with pytest.raises(ConfigError) as caught:
        make_app(**settings)
    assert str(caught.value.code).startswith(f"config error: {message}")



def test_an_alipay_notification_signed_over_its_empty_values_too_is_genuine(alipay_app, alipay_keys, user):
    """Alipay's SDKs check a notification over every parameter but sign and sign_type, empty ones
    included; its request signing leaves empty ones out. Either content verifies."""
    client, headers = alipay_app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    params = {key: value for key, value in alipay_notification(alipay_keys["alipay"][0], order["order_no"],
                                                               "9.90").items() if key not in ("sign", "sign_type")}
    assert params["buyer_logon_id"] == ""
    content = "&".join(f"{key}={value}" for key, value in sorted(params.items()))
    signature = alipay_keys["alipay"][0].sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    answer = post_alipay(client, {**params, "sign_type": "RSA2", "sign": base64.b64encode(signature).decode()})
    assert answer.get_data(as_text=True) == "success"
    assert payments_of(alipay_app, order["order_no"]) == [("2024010122001400000000000001", "paid")]


def test_with_a_seller_id_set_an_alipay_notification_for_another_seller_is_refused(make_app, alipay_keys, user):
    app = make_app(**alipay_settings(alipay_keys), payment__alipay__seller_id="2088000000000001")
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers, provider="alipay")
    key = alipay_keys["alipay"][0]
    for seller in ({"seller_id": "2088999999999999"}, {}):
        refused = post_alipay(client, alipay_notification(key, order["order_no"], "9.90", **seller))
        assert (refused.status_code, refused.get_data(as_text=True)) == (400, "fail")
    assert payments_of(app, order["order_no"]) == []
    ours = post_alipay(client, alipay_notification(key, order["order_no"], "9.90", seller_id="2088000000000001"))
    assert ours.get_data(as_text=True) == "success"
