"""The providers' query, close and refund against loopback stubs that answer the way Stripe's API
and Alipay's gateway do, with state: what each call sent, and how each answer is read."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select, text

import codes
from errors import ApiError
from extensions import db
from models import OrderModel, PaymentModel, RefundModel
from models.base import utcnow
from services import orders
from services.payments import refunds
from services.payments.base import CheckoutState, Notification, ProviderError, RefundResult, RefundUpdate
from services.payments.notify import record_payment
from tests.helpers import (
    ORDER,
    STRIPE_KEY,
    alipay_notification,
    alipay_settings,
    bearer,
    created,
    payments_of,
    pem_pair,
    post_alipay,
    post_stripe,
    stripe_event,
    stripe_settings,
    stripe_signature,
)

HANG = 1.5  # seconds a stub sits on an answer: past Stripe's timeout in stripe_settings (1 s)


class Stub:
    """A loopback HTTP server that records each request and answers it through route(); a fault
    set for the next (method, path) answers instead, or ("hang") does the work and answers late."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                sent = {"method": self.command, "path": url.path, "query": dict(parse_qsl(url.query)),
                        "headers": dict(self.headers), "form": dict(parse_qsl(body))}
                with stub.lock:
                    stub.requests.append(sent)
                    fault = stub.faults.pop((self.command, url.path), None)
                    status, payload = fault if isinstance(fault, tuple) else stub.route(sent)
                if fault == "hang":
                    time.sleep(HANG)
                answer = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def route(self, sent: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def sent(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests]


@pytest.fixture
def serve() -> Iterator[Callable[[Stub], Stub]]:
    servers: list[Stub] = []

    def start(stub: Stub) -> Stub:
        threading.Thread(target=stub.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(stub)
        return stub

    yield start
    for stub in servers:
        stub.server.shutdown()
        stub.server.server_close()


def order_row(order_no: str) -> OrderModel:
    return db.session.scalar(select(OrderModel).where(OrderModel.order_no == order_no))


def stored_payment(provider: str, transaction_id: str, order_no: str, amount: int, currency: str) -> PaymentModel:
    payment = PaymentModel(provider=provider, transaction_id=transaction_id, order_no=order_no, amount=amount,
                           currency=currency, outcome="paid", raw_payload="{}")
    db.session.add(payment)
    db.session.commit()
    return payment


def unknown_error(call: Callable[[], Any]) -> bool:
    """Call, which must raise ProviderError; whether it says the call may have taken effect."""
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value.unknown


# --- stripe --------------------------------------------------------------------------------------


def stripe_error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message, "code": code}}


class StripeApi(Stub):
    """Checkout Sessions (made, retrieved, expired), PaymentIntents a test pays, and refunds.
    A repeated Idempotency-Key is answered with its first answer, as Stripe does."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, int] = {}  # PaymentIntent id -> amount paid
        self.refunds: list[dict[str, Any]] = []
        self.replays: dict[str, tuple[int, Any]] = {}
        self.refund_status = "succeeded"
        self.paid_before_expire = False  # the buyer pays between the service's retrieve and its expire

    def pay(self, session_id: str, payment_intent: str = "pi_test_1") -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid", payment_intent=payment_intent)
        self.intents[payment_intent] = session["amount_total"]
        return session

    def route(self, sent: dict[str, Any]) -> tuple[int, Any]:
        key = sent["headers"].get("Idempotency-Key")
        if key in self.replays:
            return self.replays[key]
        answer = self.answer(sent["method"], sent["path"], {**sent["query"], **sent["form"]})
        if key is not None and answer[0] == 200:
            self.replays[key] = answer
        return answer

    def answer(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        session = re.fullmatch(r"/v1/checkout/sessions/([^/]+)(/expire)?", path)
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            return 200, self.create_session(form)
        if session and session[1] not in self.sessions:
            return 404, stripe_error(f"No such checkout.session: '{session[1]}'", "resource_missing")
        if session and method == "GET" and not session[2]:
            return 200, self.sessions[session[1]]
        if session and method == "POST" and session[2]:
            return self.expire(self.sessions[session[1]])
        if (method, path) == ("GET", "/v1/refunds"):
            return 200, {"object": "list", "url": "/v1/refunds", "has_more": False, "data": [
                refund for refund in reversed(self.refunds) if refund["payment_intent"] == form["payment_intent"]]}
        if (method, path) == ("POST", "/v1/refunds"):
            return self.create_refund(form)
        return 404, stripe_error(f"Unrecognized request URL ({method}: {path})")

    def create_session(self, form: dict[str, str]) -> dict[str, Any]:
        session_id = f"cs_test_{len(self.sessions) + 1}"
        self.sessions[session_id] = {
            "id": session_id, "object": "checkout.session", "status": "open", "payment_status": "unpaid",
            "payment_intent": None, "currency": form["line_items[0][price_data][currency]"],
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]) * int(form["line_items[0][quantity]"]),
            "metadata": {"order_no": form["metadata[order_no]"]},
            "url": f"https://checkout.stripe.test/c/pay/{session_id}"}
        return self.sessions[session_id]

    def expire(self, session: dict[str, Any]) -> tuple[int, Any]:
        if self.paid_before_expire:
            self.pay(session["id"])
        if session["status"] != "open":
            return 400, stripe_error('Only Checkout Sessions with a status in ["open"] can be expired. This '
                                     f'Checkout Session has a status of "{session["status"]}".')
        session["status"] = "expired"
        return 200, session

    def create_refund(self, form: dict[str, str]) -> tuple[int, Any]:
        intent, amount = form["payment_intent"], int(form["amount"])
        if intent not in self.intents:
            return 400, stripe_error(f"No such payment_intent: '{intent}'", "resource_missing")
        left = self.intents[intent] - sum(refund["amount"] for refund in self.refunds
                                          if refund["payment_intent"] == intent)
        if amount > left:
            return 400, stripe_error(f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                                     "amount_too_large")
        refund = {"id": f"re_test_{len(self.refunds) + 1}", "object": "refund", "amount": amount, "currency": "cny",
                  "payment_intent": intent, "status": self.refund_status,
                  "metadata": {key[9:-1]: value for key, value in form.items() if key.startswith("metadata[")}}
        self.refunds.append(refund)
        return 200, refund


@pytest.fixture
def stripe_api(serve) -> StripeApi:
    return serve(StripeApi())


@pytest.fixture
def stripe_app(make_app, stripe_api):
    return make_app(**stripe_settings(stripe_api.url))


@pytest.fixture
def stripe_order(stripe_app, user) -> dict[str, Any]:
    """An order made through the API with provider=stripe: its session is cs_test_1 at the stub."""
    return created(stripe_app.test_client(), bearer(user["access_token"]), provider="stripe")


def stripe_provider(app):
    return app.extensions["payment_providers"]["stripe"]


def test_a_stripe_order_remembers_its_checkout_session(stripe_app, stripe_api, stripe_order):
    assert stripe_order["payment"] == {"provider": "stripe", "pay_url": "https://checkout.stripe.test/c/pay/cs_test_1",
                                       "params": {"session_id": "cs_test_1"}}  # the reference is not shown
    with stripe_app.app_context():
        assert orders.checkouts_of(order_row(stripe_order["order_no"])) == ["cs_test_1"]


def test_stripe_query_retrieves_the_orders_sessions_and_reads_open_paid_and_closed(stripe_app, stripe_api,
                                                                                    stripe_order):
    provider, order_no = stripe_provider(stripe_app), stripe_order["order_no"]
    with stripe_app.app_context():
        order = order_row(order_no)
        assert provider.query(order, ["cs_test_1"]) == CheckoutState("open")
        retrieve = stripe_api.requests[-1]
        assert (retrieve["method"], retrieve["path"]) == ("GET", "/v1/checkout/sessions/cs_test_1")
        assert retrieve["headers"]["Authorization"] == f"Bearer {STRIPE_KEY}"

        stripe_api.sessions["cs_test_1"]["status"] = "complete"  # a bank debit on its way: it may still pay
        assert provider.query(order, ["cs_test_1"]) == CheckoutState("open")
        stripe_api.sessions["cs_test_1"]["status"] = "expired"
        assert provider.query(order, ["cs_test_1"]) == CheckoutState("closed")
        asked = len(stripe_api.requests)
        assert provider.query(order, []) == CheckoutState("closed")  # no session made: nothing to pay
        assert len(stripe_api.requests) == asked

        stripe_api.create_session({"line_items[0][price_data][currency]": "cny", "metadata[order_no]": order_no,
                                   "line_items[0][price_data][unit_amount]": "990", "line_items[0][quantity]": "1"})
        session = stripe_api.pay("cs_test_2", "pi_test_9")  # a retry's second session was paid
        state = provider.query(order, ["cs_test_1", "cs_test_2"])
        event = stripe_event(order_no, 990, payment_intent="pi_test_9")
        webhook = provider.parse_notification(event, {"Stripe-Signature": stripe_signature(event)})
        assert state.status == "paid" and state.payment is not None  # and exactly what its webhook brings
        assert (state.payment.order_no, state.payment.transaction_id, state.payment.amount, state.payment.currency) \
            == (webhook.order_no, webhook.transaction_id, webhook.amount, webhook.currency) \
            == (order_no, "pi_test_9", 990, "CNY")
        assert json.loads(state.payment.raw)["id"] == session["id"]

        session["payment_intent"] = None  # a session without a PaymentIntent is named by its own id
        assert provider.query(order, ["cs_test_2"]).payment.transaction_id == "cs_test_2"


def test_a_late_stripe_webhook_after_a_reconciliation_is_a_duplicate(stripe_app, stripe_api, stripe_order):
    stripe_api.pay("cs_test_1", "pi_test_1")
    with stripe_app.app_context():
        state = stripe_provider(stripe_app).query(order_row(stripe_order["order_no"]), ["cs_test_1"])
        assert record_payment("stripe", state.payment).outcome == "paid"
    body = stripe_event(stripe_order["order_no"], stripe_order["amount"], payment_intent="pi_test_1")
    late = post_stripe(stripe_app.test_client(), body, stripe_signature(body))
    assert late.get_json()["data"] == {"outcome": "duplicate", "order_no": stripe_order["order_no"]}
    assert payments_of(stripe_app, stripe_order["order_no"]) == [("pi_test_1", "paid")]


def test_stripe_close_expires_an_open_session_once_and_leaves_the_others(stripe_app, stripe_api, stripe_order):
    provider = stripe_provider(stripe_app)
    with stripe_app.app_context():
        order = order_row(stripe_order["order_no"])
        start = len(stripe_api.requests)
        provider.close(order, ["cs_test_1"])
        assert stripe_api.sent()[start:] == [("GET", "/v1/checkout/sessions/cs_test_1"),
                                             ("POST", "/v1/checkout/sessions/cs_test_1/expire")]
        assert stripe_api.sessions["cs_test_1"]["status"] == "expired"
        provider.close(order, ["cs_test_1", "cs_never_made"])  # closed, and unknown to Stripe: nothing to do
        assert stripe_api.sent()[start + 2:] == [("GET", "/v1/checkout/sessions/cs_test_1"),
                                                 ("GET", "/v1/checkout/sessions/cs_never_made")]
        stripe_api.pay("cs_test_1")
        provider.close(order, ["cs_test_1"])  # a paid session stays paid
        assert stripe_api.sent()[-1] == ("GET", "/v1/checkout/sessions/cs_test_1")


def test_a_stripe_session_paid_between_retrieve_and_expire_counts_as_closed(stripe_app, stripe_api, stripe_order):
    stripe_api.paid_before_expire = True
    with stripe_app.app_context():
        stripe_provider(stripe_app).close(order_row(stripe_order["order_no"]), ["cs_test_1"])  # no error
    assert stripe_api.sent()[-3:] == [("GET", "/v1/checkout/sessions/cs_test_1"),
                                      ("POST", "/v1/checkout/sessions/cs_test_1/expire"),
                                      ("GET", "/v1/checkout/sessions/cs_test_1")]


def test_cancelling_a_stripe_order_expires_its_session(stripe_app, stripe_api, stripe_order, user):
    answer = stripe_app.test_client().post(f"{ORDER}/cancel/{stripe_order['order_no']}",
                                           headers=bearer(user["access_token"]))
    assert answer.status_code == 200, answer.get_json()
    assert stripe_api.sessions["cs_test_1"]["status"] == "expired"
    with stripe_app.app_context():
        assert order_row(stripe_order["order_no"]).checkout_closed_at is not None


def test_a_stripe_refund_is_made_once_per_key(stripe_app, stripe_api, stripe_order):
    stripe_api.pay("cs_test_1", "pi_test_1")
    provider = stripe_provider(stripe_app)
    with stripe_app.app_context():
        payment = stored_payment("stripe", "pi_test_1", stripe_order["order_no"], 990, "CNY")
        assert provider.refund(payment, 500, "refund-1") == RefundResult("re_test_1", "succeeded")
        made = stripe_api.requests[-1]
        assert (made["method"], made["path"]) == ("POST", "/v1/refunds")
        assert made["form"] == {"payment_intent": "pi_test_1", "amount": "500", "metadata[refund_key]": "refund-1"}
        assert made["headers"]["Idempotency-Key"] == "refund-1"
        assert stripe_api.requests[-2]["query"] == {"payment_intent": "pi_test_1", "limit": "100"}

        stripe_api.refunds[0]["status"] = "pending"  # what it is now, not what the first answer said
        assert provider.refund(payment, 500, "refund-1") == RefundResult("re_test_1", "requested")
        assert stripe_api.sent()[-1] == ("GET", "/v1/refunds")  # found by its key: not made again
        stripe_api.refund_status = "requires_action"
        assert provider.refund(payment, 490, "refund-2") == RefundResult("re_test_2", "requested")
    assert [refund["amount"] for refund in stripe_api.refunds] == [500, 490]


def test_a_stripe_refund_that_answered_too_late_is_unknown_and_not_made_twice(stripe_app, stripe_api, stripe_order):
    stripe_api.pay("cs_test_1", "pi_test_1")
    provider = stripe_provider(stripe_app)
    with stripe_app.app_context():
        payment = stored_payment("stripe", "pi_test_1", stripe_order["order_no"], 990, "CNY")
        stripe_api.faults[("POST", "/v1/refunds")] = "hang"  # made at Stripe, the answer lost
        assert unknown_error(lambda: provider.refund(payment, 990, "refund-1")) is True
        assert provider.refund(payment, 990, "refund-1") == RefundResult("re_test_1", "succeeded")
        # Stripe forgets an Idempotency-Key after 24 hours: the metadata still finds the refund
        stripe_api.replays.clear()
        assert provider.refund(payment, 990, "refund-1") == RefundResult("re_test_1", "succeeded")
    assert len(stripe_api.refunds) == 1


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_stripe_refund_that_failed_is_refused(stripe_app, stripe_api, stripe_order, status):
    stripe_api.pay("cs_test_1", "pi_test_1")
    stripe_api.refund_status = status
    with stripe_app.app_context():
        payment = stored_payment("stripe", "pi_test_1", stripe_order["order_no"], 990, "CNY")
        with pytest.raises(ProviderError) as caught:
            stripe_provider(stripe_app).refund(payment, 990, "refund-1")
    assert caught.value.unknown is False and f"re_test_1 {status}" in str(caught.value)


def test_a_stripe_refusal_is_refused_with_stripes_message(stripe_app, stripe_api, stripe_order):
    stripe_api.pay("cs_test_1", "pi_test_1")
    provider = stripe_provider(stripe_app)
    with stripe_app.app_context():
        payment = stored_payment("stripe", "pi_test_1", stripe_order["order_no"], 990, "CNY")
        with pytest.raises(ProviderError) as caught:
            provider.refund(payment, 991, "refund-1")
        assert caught.value.unknown is False
        assert str(caught.value) == "stripe 400: Refund amount (991) is greater than unrefunded amount on charge (990)"
        stripe_api.faults[("GET", "/v1/checkout/sessions/cs_test_1")] = (400, stripe_error("Invalid API call"))
        with pytest.raises(ProviderError) as caught:
            provider.query(order_row(stripe_order["order_no"]), ["cs_test_1"])
        assert (caught.value.unknown, str(caught.value)) == (False, "stripe 400: Invalid API call")
        stripe_api.sessions["cs_test_1"]["status"] = "open"  # still open after a refused expire: not closed
        stripe_api.faults[("POST", "/v1/checkout/sessions/cs_test_1/expire")] = (400, stripe_error("Nope"))
        assert unknown_error(lambda: provider.close(order_row(stripe_order["order_no"]), ["cs_test_1"])) is False
        assert unknown_error(lambda: provider.query(order_row(stripe_order["order_no"]), ["cs_gone"])) is False


@pytest.mark.parametrize("fault", [(500, {"error": {"type": "api_error", "message": "oops"}}), (409, stripe_error(
    "conflict")), (429, {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow"}}), "hang"],
    ids=["500", "409", "429", "timeout"])
@pytest.mark.parametrize("call", ["query", "close", "refund"])
def test_a_stripe_5xx_or_no_answer_is_unknown(stripe_app, stripe_api, stripe_order, fault, call):
    stripe_api.pay("cs_test_1", "pi_test_1")
    stripe_api.sessions["cs_test_1"]["status"] = "open"
    provider = stripe_provider(stripe_app)
    with stripe_app.app_context():
        order = order_row(stripe_order["order_no"])
        payment = stored_payment("stripe", "pi_test_1", stripe_order["order_no"], 990, "CNY")
        path = {"query": "/v1/checkout/sessions/cs_test_1", "close": "/v1/checkout/sessions/cs_test_1/expire",
                "refund": "/v1/refunds"}[call]
        stripe_api.faults[("GET" if call == "query" else "POST", path)] = fault
        run = {"query": lambda: provider.query(order, ["cs_test_1"]), "close": lambda: provider.close(order, [
            "cs_test_1"]), "refund": lambda: provider.refund(payment, 990, "refund-1")}[call]
        assert unknown_error(run) is True


def stripe_refund_event(event_type: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"id": "evt_test_r", "object": "event", "type": event_type, "data": {"object": data}}).encode()


@pytest.mark.parametrize(("event_type", "data", "expected"), [
    ("refund.updated", {"id": "re_1", "object": "refund", "status": "succeeded"}, RefundUpdate("re_1", "succeeded")),
    ("refund.updated", {"id": "re_1", "object": "refund", "status": "canceled"}, RefundUpdate("re_1", "failed")),
    ("refund.updated", {"id": "re_1", "object": "refund", "status": "requires_action"},
     RefundUpdate("re_1", "requested")),
    ("refund.failed", {"id": "re_1", "object": "refund", "status": "failed"}, RefundUpdate("re_1", "failed")),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "refunds": {"object": "list", "data": [
        {"id": "re_2", "object": "refund", "status": "pending"},
        {"id": "re_1", "object": "refund", "status": "succeeded"}]}}, RefundUpdate("re_2", "requested")),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": 990}, None),
    ("refund.updated", {"id": "re_1", "object": "refund", "status": "something_new"}, None),
], ids=["succeeded", "canceled", "requires_action", "failed", "charge with refunds", "charge without", "new status"])
def test_stripe_refund_events_are_read_as_refund_updates(stripe_app, event_type, data, expected):
    body = stripe_refund_event(event_type, data)
    assert stripe_provider(stripe_app).parse_notification(body, {"Stripe-Signature": stripe_signature(body)}) \
        == expected


def test_a_forged_stripe_refund_event_is_refused(stripe_app):
    body = stripe_refund_event("refund.updated", {"id": "re_1", "object": "refund", "status": "succeeded"})
    with pytest.raises(ApiError) as caught:
        stripe_provider(stripe_app).parse_notification(body, {"Stripe-Signature": stripe_signature(body, "whsec_x")})
    assert caught.value.code == codes.PAYMENT_SIGNATURE_INVALID


# --- alipay --------------------------------------------------------------------------------------

TRADE_NO = "2024010122001400000000000001"  # what alipay_notification() says paid


class AlipayGateway(Stub):
    """alipay.trade.query/.close/.refund and .fastpay.refund.query on trades a test sets up. It
    checks the app's signature, and signs its answers with the test "Alipay" key over the exact
    text it sends, spaced unlike a compact re-serialisation (as a real answer's bytes may be)."""

    def __init__(self, keys: dict[str, Any]) -> None:
        super().__init__()
        self.app_public, self.alipay_key, self.app_key = keys["app"][0].public_key(), keys["alipay"][0], keys["app"][0]
        self.trades: dict[str, dict[str, str]] = {}  # out_trade_no -> trade_no, trade_status, total_amount
        self.refunds: dict[tuple[str, str], Decimal] = {}  # (trade_no, out_request_no) -> refunded, done
        self.pending: dict[tuple[str, str], Decimal] = {}  # asked, not done yet
        self.refund_later = False  # a new refund is pending at first (fund_change N)
        self.signing = "alipay"  # or "app key", "none", "respaced", "amount changed"
        self.override: dict[str, Any] | None = None  # the next business answer

    def trade(self, order_no: str, status: str, total: str = "9.90") -> None:
        self.trades[order_no] = {"trade_no": TRADE_NO, "out_trade_no": order_no, "trade_status": status,
                                 "total_amount": total}

    def route(self, sent: dict[str, Any]) -> tuple[int, Any]:
        form = sent["form"]
        method = form.get("method", "")
        content = "&".join(f"{k}={v}" for k, v in sorted(form.items()) if k != "sign" and v != "")
        try:
            self.app_public.verify(base64.b64decode(form.get("sign", "")), content.encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
            answer = self.override or self.business(method, json.loads(form["biz_content"]))
        except InvalidSignature:
            answer = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                      "sub_msg": "验签出错"}
        self.override = None
        return 200, self.signed(method.replace(".", "_") + "_response", answer)

    def signed(self, node: str, answer: dict[str, Any]) -> bytes:
        value = json.dumps(answer, ensure_ascii=False)  # ", " and ": ": not what json.dumps(..., (",", ":")) makes
        key = self.app_key if self.signing == "app key" else self.alipay_key
        sign = base64.b64encode(key.sign(value.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        if self.signing == "respaced":
            value = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))  # same JSON, other text
        if self.signing == "amount changed":
            value = value.replace('"9.90"', '"0.01"')
        tail = "" if self.signing == "none" else f',"sign":"{sign}"'
        return f'{{"{node}":{value}{tail}}}'.encode()

    def business(self, method: str, biz: dict[str, str]) -> dict[str, Any]:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                    "sub_msg": "交易不存在"}
        if method == "alipay.trade.query":
            return {"code": "10000", "msg": "Success", "buyer_logon_id": "159****5620", **trade}
        if method == "alipay.trade.close":
            if trade["trade_status"] != "WAIT_BUYER_PAY":
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR",
                        "sub_msg": "交易状态不合法"}
            trade["trade_status"] = "TRADE_CLOSED"
            return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"],
                    "out_trade_no": biz["out_trade_no"]}
        refund = (biz["trade_no"], biz["out_request_no"])
        if method == "alipay.trade.fastpay.refund.query":
            done = {"refund_status": "REFUND_SUCCESS", "refund_amount": str(self.refunds[refund])} \
                if refund in self.refunds else {}
            return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"],
                    "out_trade_no": biz["out_trade_no"], "out_request_no": biz["out_request_no"], **done}
        assert method == "alipay.trade.refund", method
        if refund not in self.refunds and refund not in self.pending:
            taken = sum(self.refunds.values()) + sum(self.pending.values())
            if taken + Decimal(biz["refund_amount"]) > Decimal(trade["total_amount"]):
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                        "sub_msg": "退款金额超限"}
            (self.pending if self.refund_later else self.refunds)[refund] = Decimal(biz["refund_amount"])
            fund_change = "N" if self.refund_later else "Y"
        else:
            fund_change = "N"  # this out_request_no was asked before: nothing moves now
        return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"], "out_trade_no": biz["out_trade_no"],
                "buyer_logon_id": "159****5620", "fund_change": fund_change,
                "refund_fee": str(sum(self.refunds.values(), Decimal("0.00")))}


@pytest.fixture(scope="module")
def alipay_keys() -> dict[str, Any]:
    """The merchant app's key pair and Alipay's (as in test_payments), made for this module."""
    return {"app": pem_pair(), "alipay": pem_pair()}


@pytest.fixture
def gateway(serve, alipay_keys) -> AlipayGateway:
    return serve(AlipayGateway(alipay_keys))


@pytest.fixture
def alipay_app(make_app, alipay_keys, gateway):
    return make_app(**{**alipay_settings(alipay_keys), "payment__alipay__gateway": f"{gateway.url}/gateway.do",
                       "payment__alipay__timeout": 1})


@pytest.fixture
def alipay_order(alipay_app, user) -> dict[str, Any]:
    return created(alipay_app.test_client(), bearer(user["access_token"]), provider="alipay")


def alipay_provider(app):
    return app.extensions["payment_providers"]["alipay"]


def test_alipay_query_is_a_signed_gateway_call_and_reads_open_paid_and_closed(alipay_app, gateway, alipay_order):
    provider, order_no = alipay_provider(alipay_app), alipay_order["order_no"]
    with alipay_app.app_context():
        order = order_row(order_no)
        assert provider.query(order, []) == CheckoutState("open")  # the buyer has not opened the URL yet
        [asked] = gateway.requests
        assert (asked["method"], asked["path"], asked["query"]) == ("POST", "/gateway.do", {"charset": "utf-8"})
        assert asked["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        form = asked["form"]
        assert {k: form[k] for k in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
            "app_id": "2021000000000001", "method": "alipay.trade.query", "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "version": "1.0"}
        assert json.loads(form["biz_content"]) == {"out_trade_no": order_no}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", form["timestamp"])

        gateway.trade(order_no, "WAIT_BUYER_PAY")
        assert provider.query(order, []) == CheckoutState("open")
        gateway.trade(order_no, "TRADE_SUCCESS")
        state = provider.query(order, [])
        assert state.status == "paid"
        assert (state.payment.order_no, state.payment.transaction_id, state.payment.amount, state.payment.currency) \
            == (order_no, TRADE_NO, 990, "CNY")
        assert json.loads(state.payment.raw)["trade_status"] == "TRADE_SUCCESS"  # the signed text, kept
        gateway.trade(order_no, "TRADE_FINISHED")
        assert provider.query(order, []).status == "paid"
        gateway.trade(order_no, "TRADE_CLOSED")
        assert provider.query(order, []) == CheckoutState("closed")
        # an answer the service could not record as a payment is no payment
        gateway.trade(order_no, "TRADE_SUCCESS", total="9.999")
        assert unknown_error(lambda: provider.query(order, [])) is True
    assert all(request["form"]["sign"] for request in gateway.requests)


def test_an_alipay_trade_never_made_is_closed_once_the_order_has_expired(alipay_app, gateway, alipay_order):
    with alipay_app.app_context():
        db.session.execute(text("UPDATE orders SET expires_at = expires_at - INTERVAL 1 HOUR WHERE order_no = :no"),
                           {"no": alipay_order["order_no"]})
        db.session.commit()
        assert alipay_provider(alipay_app).query(order_row(alipay_order["order_no"]), []) == CheckoutState("closed")


def test_a_late_alipay_notification_after_a_reconciliation_is_a_duplicate(alipay_app, alipay_keys, gateway,
                                                                          alipay_order):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    with alipay_app.app_context():
        state = alipay_provider(alipay_app).query(order_row(alipay_order["order_no"]), [])
        assert record_payment("alipay", state.payment).outcome == "paid"
    late = post_alipay(alipay_app.test_client(), alipay_notification(alipay_keys["alipay"][0],
                                                                     alipay_order["order_no"], "9.90"))
    assert late.get_data(as_text=True) == "success"
    assert payments_of(alipay_app, alipay_order["order_no"]) == [(TRADE_NO, "paid")]


@pytest.mark.parametrize("signing", ["app key", "none", "respaced", "amount changed"])
def test_an_alipay_answer_not_signed_over_its_exact_text_by_alipay_tells_nothing(alipay_app, gateway, alipay_order,
                                                                                  signing):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    gateway.signing = signing
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        order = order_row(alipay_order["order_no"])
        with pytest.raises(ProviderError) as caught:
            provider.query(order, [])
        assert caught.value.unknown is True
        assert str(caught.value) == "alipay's answer to alipay.trade.query is not signed by alipay"
        gateway.signing = "alipay"
        assert provider.query(order, []).payment.amount == 990


def test_alipay_close_is_done_for_open_missing_closed_and_paid_trades(alipay_app, gateway, alipay_order):
    provider, order_no = alipay_provider(alipay_app), alipay_order["order_no"]
    with alipay_app.app_context():
        order = order_row(order_no)
        provider.close(order, [])  # no trade yet: nothing to close (the URL dies with the order)
        gateway.trade(order_no, "WAIT_BUYER_PAY")
        provider.close(order, [])
        assert gateway.trades[order_no]["trade_status"] == "TRADE_CLOSED"
        provider.close(order, [])  # closed already
        gateway.trade(order_no, "TRADE_SUCCESS")
        provider.close(order, [])  # paid: stays paid
        assert gateway.trades[order_no]["trade_status"] == "TRADE_SUCCESS"
    assert {request["form"]["method"] for request in gateway.requests} == {"alipay.trade.close"}
    assert all(json.loads(request["form"]["biz_content"]) == {"out_trade_no": order_no}
               for request in gateway.requests)


def test_an_alipay_refund_is_made_once_per_out_request_no(alipay_app, gateway, alipay_order):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        payment = stored_payment("alipay", TRADE_NO, alipay_order["order_no"], 990, "CNY")
        assert provider.refund(payment, 500, "refund-1") == RefundResult(f"{TRADE_NO}:refund-1", "succeeded")
        form = gateway.requests[-1]["form"]
        assert form["method"] == "alipay.trade.refund"
        assert json.loads(form["biz_content"]) == {"out_trade_no": alipay_order["order_no"], "trade_no": TRADE_NO,
                                                   "refund_amount": "5.00", "out_request_no": "refund-1"}
        # asked again: Alipay moves no money (fund_change N), and its refund query says it is done
        assert provider.refund(payment, 500, "refund-1") == RefundResult(f"{TRADE_NO}:refund-1", "succeeded")
        assert [request["form"]["method"] for request in gateway.requests[-2:]] == [
            "alipay.trade.refund", "alipay.trade.fastpay.refund.query"]
        assert json.loads(gateway.requests[-1]["form"]["biz_content"]) == {
            "out_trade_no": alipay_order["order_no"], "trade_no": TRADE_NO, "out_request_no": "refund-1"}
        assert provider.refund(payment, 490, "refund-2").status == "succeeded"
    assert gateway.refunds == {(TRADE_NO, "refund-1"): Decimal("5.00"), (TRADE_NO, "refund-2"): Decimal("4.90")}


def test_an_alipay_refund_still_under_way_is_requested_until_its_query_says_done(alipay_app, gateway, alipay_order):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    gateway.refund_later = True
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        payment = stored_payment("alipay", TRADE_NO, alipay_order["order_no"], 990, "CNY")
        assert provider.refund(payment, 990, "refund-1") == RefundResult(f"{TRADE_NO}:refund-1", "requested")
        gateway.refunds.update(gateway.pending)  # Alipay finishes it
        assert provider.refund(payment, 990, "refund-1").status == "succeeded"
        original = gateway.business  # from now on the refund is answered, and its query fails

        def query_fails(method, biz):
            if method == "alipay.trade.fastpay.refund.query":
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在"}
            return original(method, biz)

        gateway.business = query_fails
        # a refund that was answered 10000 is never refused because its confirmation failed
        assert unknown_error(lambda: provider.refund(payment, 990, "refund-1")) is True


def test_an_alipay_business_refusal_is_refused_with_its_sub_msg(alipay_app, gateway, alipay_order):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        payment = stored_payment("alipay", TRADE_NO, alipay_order["order_no"], 990, "CNY")
        with pytest.raises(ProviderError) as caught:
            provider.refund(payment, 991, "refund-1")
        assert caught.value.unknown is False
        assert str(caught.value) == "alipay alipay.trade.refund 40004 ACQ.REFUND_AMT_NOT_EQUAL_TOTAL: 退款金额超限"
        gateway.override = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_HAS_CLOSE",
                            "sub_msg": "交易已经关闭"}
        assert unknown_error(lambda: provider.close(order_row(alipay_order["order_no"]), [])) is False
        gateway.override = {"code": "40006", "msg": "Insufficient Permissions", "sub_code": "isv.insufficient-isv"
                            "-permissions", "sub_msg": "ISV权限不足"}
        assert unknown_error(lambda: provider.query(order_row(alipay_order["order_no"]), [])) is False
    assert gateway.refunds == {}


@pytest.mark.parametrize("fault", ["500", "timeout", "20000", "ACQ.SYSTEM_ERROR"])
@pytest.mark.parametrize("call", ["query", "close", "refund"])
def test_an_alipay_fault_or_no_answer_is_unknown(alipay_app, gateway, alipay_order, fault, call):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")  # alipay_app waits 1 s; the stub hangs longer
    if fault in ("500", "timeout"):
        gateway.faults[("POST", "/gateway.do")] = (500, b"busy") if fault == "500" else "hang"
    else:
        gateway.override = {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error",
                            "sub_msg": "系统繁忙"} if fault == "20000" else {
            "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误"}
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        order = order_row(alipay_order["order_no"])
        payment = stored_payment("alipay", TRADE_NO, alipay_order["order_no"], 990, "CNY")
        run = {"query": lambda: provider.query(order, []), "close": lambda: provider.close(order, []),
               "refund": lambda: provider.refund(payment, 990, "refund-1")}[call]
        assert unknown_error(run) is True


def test_alipays_refund_notification_is_a_refund_update_for_the_refund_it_made(alipay_app, alipay_keys, gateway,
                                                                             alipay_order):
    gateway.trade(alipay_order["order_no"], "TRADE_SUCCESS")
    provider = alipay_provider(alipay_app)
    with alipay_app.app_context():
        payment = stored_payment("alipay", TRADE_NO, alipay_order["order_no"], 990, "CNY")
        made = provider.refund(payment, 990, "refund-1")
    params = alipay_notification(alipay_keys["alipay"][0], alipay_order["order_no"], "9.90",
                                 trade_status="TRADE_CLOSED", refund_fee="9.90", out_biz_no="refund-1",
                                 gmt_refund="2024-01-02 12:00:00.000")
    assert provider.parse_notification(urlencode(params).encode(), {}) == RefundUpdate(made.provider_refund_id,
                                                                                      "succeeded")
    # the payment notification of the same trade is still a payment
    paid = alipay_notification(alipay_keys["alipay"][0], alipay_order["order_no"], "9.90")
    assert isinstance(provider.parse_notification(urlencode(paid).encode(), {}), Notification)


# --- the whole cycle through the service, with Stripe -------------------------------------------------------


def stripe_paid_order(stripe_app, stripe_api, stripe_order) -> int:
    """The stub pays the order's session and its webhook arrives; the stored payment's id."""
    stripe_api.pay("cs_test_1", "pi_test_1")
    body = stripe_event(stripe_order["order_no"], stripe_order["amount"])
    client = stripe_app.test_client()
    answer = client.post("/api/payment/notify/stripe", data=body, content_type="application/json",
                         headers={"Stripe-Signature": stripe_signature(body)})
    assert answer.get_json()["data"]["outcome"] == "paid"
    with stripe_app.app_context():
        return db.session.scalar(select(PaymentModel.id).where(PaymentModel.transaction_id == "pi_test_1"))


def test_a_refund_stripe_refuses_stays_failed_and_a_second_request_succeeds(stripe_app, stripe_api, stripe_order,
                                                                             user):
    payment_id = stripe_paid_order(stripe_app, stripe_api, stripe_order)
    cli = stripe_app.test_cli_runner()
    stripe_api.faults[("POST", "/v1/refunds")] = (400, stripe_error("Charge ch_1 is disputed", "charge_disputed"))
    refused = cli.invoke(args=["payments", "refund", str(payment_id), "--yes"])
    assert refused.exit_code != 0 and "failed" in refused.output and "Charge ch_1 is disputed" in refused.output
    again = cli.invoke(args=["payments", "refund", str(payment_id), "--yes"])
    assert again.exit_code == 0 and ": succeeded 990 CNY" in again.output
    with stripe_app.app_context():
        stored = [(row.status, row.error) for row in db.session.scalars(
            select(RefundModel).where(RefundModel.payment_id == payment_id).order_by(RefundModel.id))]
    assert stored == [("failed", "stripe 400: Charge ch_1 is disputed"), ("succeeded", None)]
    assert [refund["amount"] for refund in stripe_api.refunds] == [990]  # only the second reached the money
    shown = stripe_app.test_client().get(f"/api/client/order/status/{stripe_order['order_no']}",
                                         headers=bearer(user["access_token"])).get_json()["data"]
    assert shown["refunded_amount"] == 990


def test_a_pending_stripe_refund_is_settled_by_its_webhook(stripe_app, stripe_api, stripe_order, user):
    payment_id = stripe_paid_order(stripe_app, stripe_api, stripe_order)
    stripe_api.refund_status = "pending"
    result = stripe_app.test_cli_runner().invoke(args=["payments", "refund", str(payment_id), "--amount", "400",
                                                       "--yes"])
    assert ": requested 400 CNY" in result.output
    body = stripe_refund_event("refund.updated", {"id": "re_test_1", "object": "refund", "status": "succeeded"})
    client = stripe_app.test_client()
    answer = client.post("/api/payment/notify/stripe", data=body, content_type="application/json",
                         headers={"Stripe-Signature": stripe_signature(body)})
    assert answer.get_json()["data"]["outcome"] == "refund_succeeded"
    again = client.post("/api/payment/notify/stripe", data=body, content_type="application/json",
                        headers={"Stripe-Signature": stripe_signature(body)})
    assert again.get_json()["data"]["outcome"] == "ignored"  # settled already: counted once
    stripe_api.refunds[0]["status"] = "succeeded"
    with stripe_app.app_context():  # a sweep that read the refund as requested just before the webhook
        refund_id = db.session.scalar(select(RefundModel.id).where(RefundModel.payment_id == payment_id))
        assert refunds._ask_provider(refund_id).status == "succeeded"
    shown = client.get(f"/api/client/order/status/{stripe_order['order_no']}",
                       headers=bearer(user["access_token"])).get_json()["data"]
    assert shown["refunded_amount"] == 400


def test_reconciliation_that_cannot_reach_stripe_says_so_and_the_next_run_pays(make_app, stripe_api, user):
    app = make_app(**stripe_settings(stripe_api.url), payment__reconcile_after_seconds=0)
    order = created(app.test_client(), bearer(user["access_token"]), provider="stripe")
    stripe_api.pay("cs_test_1", "pi_test_9")  # paid at Stripe; the webhook never comes
    stripe_api.faults[("GET", "/v1/checkout/sessions/cs_test_1")] = (500, {"error": {"type": "api_error"}})
    down = app.test_cli_runner().invoke(args=["reconcile-orders"])
    assert down.exit_code == 1 and "unreachable: 1" in down.output
    up = app.test_cli_runner().invoke(args=["reconcile-orders"])
    assert up.exit_code == 0 and up.output.strip() == "paid: 1"
    shown = app.test_client().get(f"/api/client/order/status/{order['order_no']}",
                                  headers=bearer(user["access_token"])).get_json()["data"]
    assert (shown["status"], shown["transaction_id"]) == ("PAID", "pi_test_9")


def test_reading_an_order_past_its_deadline_asks_stripe_nothing_and_the_sweep_closes_it(stripe_app, stripe_api,
                                                                                        stripe_order, user):
    with stripe_app.app_context():
        db.session.execute(OrderModel.__table__.update().values(expires_at=OrderModel.created_at))
        db.session.commit()
    asked = len(stripe_api.requests)
    shown = stripe_app.test_client().get(f"/api/client/order/status/{stripe_order['order_no']}",
                                         headers=bearer(user["access_token"])).get_json()["data"]
    assert shown["status"] == "EXPIRED" and len(stripe_api.requests) == asked  # a read never waits for Stripe
    assert stripe_app.test_cli_runner().invoke(args=["expire-orders"]).exit_code == 0
    assert stripe_api.sessions["cs_test_1"]["status"] == "expired"


def test_two_sweeps_never_ask_about_one_refund_at_once_and_a_late_success_still_counts(stripe_app, stripe_api,
                                                                                      stripe_order, user):
    payment_id = stripe_paid_order(stripe_app, stripe_api, stripe_order)
    stripe_api.faults[("POST", "/v1/refunds")] = (400, stripe_error("Insufficient funds in the balance"))
    stripe_app.test_cli_runner().invoke(args=["payments", "refund", str(payment_id), "--yes"])
    with stripe_app.app_context():
        refund_id = db.session.scalar(select(RefundModel.id).where(RefundModel.payment_id == payment_id))
        an_hour_ago = utcnow() - timedelta(hours=1)  # a refund left requested, as after a timeout
        db.session.execute(RefundModel.__table__.update().values(status="requested", requested_at=an_hour_ago))
        db.session.commit()
        assert (refunds._claim(refund_id), refunds._claim(refund_id)) == (True, False)
        db.session.execute(RefundModel.__table__.update().values(status="failed"))
        db.session.commit()
        refund, changed = refunds._settle(refund_id, "succeeded", provider_refund_id="re_test_9")
        assert (refund.status, changed) == ("succeeded", True)
    shown = stripe_app.test_client().get(f"/api/client/order/status/{stripe_order['order_no']}",
                                         headers=bearer(user["access_token"])).get_json()["data"]
    assert shown["refunded_amount"] == 990
