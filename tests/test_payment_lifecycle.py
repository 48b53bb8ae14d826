"""After the payment, with the dev provider: a lost notification found by asking, checkouts closed
when orders end, and refunds that never exceed what was paid."""

import re
import threading

import pytest
from sqlalchemy import select

from extensions import db
from models import DevLedgerModel, OrderModel, PaymentModel, RefundModel
from scripts.processes import free_port
from services.payments import refunds
from tests.helpers import bearer, created, notify_dev, payments_of, status_of


@pytest.fixture
def shop(make_app, user):
    """An app that reconciles orders at once, a client and the user's headers."""
    app = make_app(payment__reconcile_after_seconds=0)
    return app, app.test_client(), bearer(user["access_token"])


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def ledger(app, order_no):
    with app.app_context():
        return db.session.get(DevLedgerModel, order_no)


def paid_order(app, client, headers, **kwargs):
    """An order paid by a dev notification; (order data, payment id)."""
    order = created(client, headers, **kwargs)
    assert notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_paid_1").status_code == 200
    with app.app_context():
        payment_id = db.session.scalar(select(PaymentModel.id).where(PaymentModel.order_no == order["order_no"]))
    return order, payment_id


def refunds_of(app, payment_id):
    with app.app_context():
        return [(row.amount, row.status) for row in db.session.scalars(
            select(RefundModel).where(RefundModel.payment_id == payment_id).order_by(RefundModel.id))]


def test_a_payment_whose_notification_was_lost_is_found_by_reconciliation_and_the_late_one_is_a_duplicate(shop):
    app, client, headers = shop
    order = created(client, headers)
    nobody = f"http://127.0.0.1:{free_port()}"
    lost = cli(app, "pay-order", order["order_no"], "--url", nobody)  # paid at the provider, never told
    assert lost.exit_code != 0 and "did not answer" in lost.output
    assert status_of(client, headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"

    reconciled = cli(app, "reconcile-orders")
    assert reconciled.exit_code == 0, reconciled.output
    assert reconciled.output.strip() == "paid: 1"
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    transaction_id = ledger(app, order["order_no"]).transaction_id
    assert (shown["status"], shown["transaction_id"]) == ("PAID", transaction_id)

    late = notify_dev(client, app, order["order_no"], order["amount"], transaction_id=transaction_id)
    assert late.get_json()["data"]["outcome"] == "duplicate"
    assert payments_of(app, order["order_no"]) == [(transaction_id, "paid")]
    assert cli(app, "reconcile-orders").output.strip() == "no orders to ask about"


def test_a_notification_before_reconciliation_leaves_it_nothing_to_change(shop):
    app, client, headers = shop
    order, _ = paid_order(app, client, headers)
    assert cli(app, "reconcile-orders").output.strip() == "no orders to ask about"
    assert payments_of(app, order["order_no"]) == [("dev_paid_1", "paid")]


def test_an_unpaid_pending_order_is_reported_open_and_left_alone(shop):
    app, client, headers = shop
    order = created(client, headers)
    assert cli(app, "reconcile-orders").output.strip() == "open: 1"
    assert status_of(client, headers, order["order_no"]).get_json()["data"]["status"] == "PENDING"


def test_a_cancel_closes_the_checkout_so_the_provider_takes_no_money(shop):
    app, client, headers = shop
    order = created(client, headers)
    assert client.post(f"/api/client/order/cancel/{order['order_no']}", headers=headers).status_code == 200
    assert ledger(app, order["order_no"]).state == "closed"
    with app.app_context():
        assert db.session.scalar(select(OrderModel.checkout_closed_at)
                                 .where(OrderModel.order_no == order["order_no"])) is not None
    refused = cli(app, "pay-order", order["order_no"])
    assert refused.exit_code != 0 and "closed: it cannot be paid" in refused.output
    assert cli(app, "reconcile-orders").output.strip() == "unpaid: 1"


def test_the_expiry_sweep_closes_the_checkouts_of_the_orders_it_expires(make_app, user):
    app = make_app(order__expire_seconds=1)
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers)
    with app.app_context():  # past due, without waiting
        db.session.execute(OrderModel.__table__.update().values(expires_at=OrderModel.created_at))
        db.session.commit()
    assert cli(app, "expire-orders").output.strip() == "Expired 1 order(s)."
    assert ledger(app, order["order_no"]).state == "closed"


def test_a_full_refund_shows_on_the_order_and_leaves_nothing_to_refund(shop):
    app, client, headers = shop
    order, payment_id = paid_order(app, client, headers)
    refunded = cli(app, "payments", "refund", str(payment_id), "--yes")
    assert refunded.exit_code == 0, refunded.output
    assert re.fullmatch(rf"refund \d+: succeeded {order['amount']} CNY\n", refunded.output)
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert (shown["status"], shown["refunded_amount"]) == ("PAID", order["amount"])
    again = cli(app, "payments", "refund", str(payment_id), "--yes")
    assert again.exit_code != 0 and f"payment {payment_id} has nothing left to refund" in again.output
    assert "refundable=0" in cli(app, "payments", "list").output
    assert refunds_of(app, payment_id) == [(order["amount"], "succeeded")]


def test_a_partial_refund_then_the_rest_never_exceed_what_was_paid(shop):
    app, client, headers = shop
    order, payment_id = paid_order(app, client, headers)  # 990
    assert cli(app, "payments", "refund", str(payment_id), "--amount", "300", "--yes").exit_code == 0
    too_much = cli(app, "payments", "refund", str(payment_id), "--amount", "691", "--yes")
    assert too_much.exit_code != 0 and "has 690 CNY left to refund, not 691" in too_much.output
    assert cli(app, "payments", "refund", str(payment_id), "--yes").exit_code == 0
    assert refunds_of(app, payment_id) == [(300, "succeeded"), (690, "succeeded")]
    assert status_of(client, headers, order["order_no"]).get_json()["data"]["refunded_amount"] == 990
    assert ledger(app, order["order_no"]).refunded == 990


def test_two_operators_refunding_one_needs_refund_payment_at_once_make_one_refund(shop):
    app, client, headers = shop
    order = created(client, headers)
    client.post(f"/api/client/order/cancel/{order['order_no']}", headers=headers)
    late = notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_late_2")
    assert late.get_json()["data"]["outcome"] == "needs_refund"
    with app.app_context():
        payment_id = db.session.scalar(select(PaymentModel.id).where(PaymentModel.order_no == order["order_no"]))
    outcomes, start = [], threading.Barrier(2)

    def operator():  # what `payments refund PAYMENT_ID --yes` runs
        with app.app_context():
            start.wait()
            try:
                outcomes.append(refunds.request_refund(payment_id).status)
            except refunds.RefundRefused as refused:
                outcomes.append(str(refused))

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [f"payment {payment_id} has nothing left to refund", "succeeded"]
    assert refunds_of(app, payment_id) == [(order["amount"], "succeeded")]


def test_the_sweep_refunds_needs_refund_payments_only_when_told_to(make_app, user):
    app = make_app(payment__auto_refund=True)
    client, headers = app.test_client(), bearer(user["access_token"])
    order = created(client, headers)
    client.post(f"/api/client/order/cancel/{order['order_no']}", headers=headers)
    late = notify_dev(client, app, order["order_no"], order["amount"], transaction_id="dev_late_1")
    assert late.get_json()["data"]["outcome"] == "needs_refund"
    manual = make_app()  # payment.auto_refund off: the sweep leaves it to an operator
    assert cli(manual, "refunds", "sweep").output.strip() == "no refunds to make"
    assert cli(app, "refunds", "sweep").output.strip() == "refunded_succeeded: 1"
    assert cli(app, "refunds", "sweep").output.strip() == "no refunds to make"
    shown = status_of(client, headers, order["order_no"]).get_json()["data"]
    assert (shown["status"], shown["refunded_amount"]) == ("CANCELLED", order["amount"])


def test_a_refund_of_an_unknown_payment_says_so(app):
    result = cli(app, "payments", "refund", "999999", "--yes")
    assert result.exit_code != 0 and "no payment 999999" in result.output
