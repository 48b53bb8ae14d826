"""A client app's story, written against the typed client that openapi-python-client generates from
/api/openapi.json (the package flask_api_client). tests/test_generated_client.py generates the client,
type-checks this file with mypy --strict (no casts: order_no is a str, a replayed create a success) and
runs it against a live server."""

import sys

from flask_api_client import AuthenticatedClient, Client
from flask_api_client.api.auth import auth_logout, auth_me, auth_register
from flask_api_client.api.order import order_cancel, order_create, order_list_orders, order_products, order_status
from flask_api_client.models import (
    AuthResultEnvelope,
    EmptyEnvelope,
    Logout,
    OrderCreate,
    OrderCreatedEnvelope,
    OrderEnvelope,
    OrderPageEnvelope,
    OrderStatus,
    PaymentProvider,
    ProductListEnvelope,
    Register,
    UserEnvelope,
)


def story(base_url: str) -> list[str]:
    anonymous = Client(base_url=base_url)
    registered = auth_register.sync(client=anonymous, body=Register(email="gen@example.com",
                                                                    password="correct horse battery"))
    assert isinstance(registered, AuthResultEnvelope), registered
    client = AuthenticatedClient(base_url=base_url, token=registered.data.access_token)
    me = auth_me.sync(client=client)
    assert isinstance(me, UserEnvelope) and me.data.email == "gen@example.com"
    products = order_products.sync(client=anonymous)
    assert isinstance(products, ProductListEnvelope)
    body = OrderCreate(product_id=products.data.items[0].id, provider=PaymentProvider.DEV)
    first = order_create.sync(client=client, body=body, idempotency_key="gen-1")
    replay = order_create.sync_detailed(client=client, body=body, idempotency_key="gen-1")
    assert isinstance(first, OrderCreatedEnvelope), first
    assert replay.status_code == 200 and isinstance(replay.parsed, OrderCreatedEnvelope)
    order_no: str = first.data.order_no
    assert replay.parsed.data.order_no == order_no
    shown = order_status.sync(order_no, client=client)
    assert isinstance(shown, OrderEnvelope) and shown.data.status == OrderStatus.PENDING
    page = order_list_orders.sync(client=client, status=OrderStatus.PENDING)
    assert isinstance(page, OrderPageEnvelope) and [order.order_no for order in page.data.items] == [order_no]
    cancelled = order_cancel.sync(order_no, client=client)
    assert isinstance(cancelled, OrderEnvelope) and cancelled.data.status == OrderStatus.CANCELLED
    assert isinstance(auth_logout.sync(client=client, body=Logout()), EmptyEnvelope)
    return [order_no, cancelled.data.status.value]


if __name__ == "__main__":
    print(" ".join(story(sys.argv[1])))
