"""/api/client/order: the catalog, and creating, reading, listing and cancelling orders."""

from __future__ import annotations

from flask import Blueprint

import codes
from api import arguments, documented, response
from blueprints.user_dependencies import current_user, login_required
from schemas.order import (
    IdempotencyKeySchema,
    OrderCreatedSchema,
    OrderCreateSchema,
    OrderListQuerySchema,
    OrderPageSchema,
    OrderSchema,
    ProductListSchema,
)
from services import catalog, orders

bp = Blueprint("order", __name__, url_prefix="/api/client/order")
# What an order_no looks like (orders.is_order_no); any other value answers 404.
ORDER_NO = {"in": "path", "name": "order_no", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{20}$", "minLength": 20, "maxLength": 20}}


@bp.get("/products")
@response(ProductListSchema)
def products():
    """The products for sale, named in the request's language; prices in minor units."""
    return {"items": catalog.list_products()}


@bp.post("/create")
@login_required(drops=orders.pages_key)
@response(OrderCreatedSchema, status=201, also={200: OrderCreatedSchema},
          errors=[codes.ORDER_PRODUCT_NOT_FOUND, codes.ORDER_IDEMPOTENCY_CONFLICT, codes.ORDER_CURRENCY_NOT_SUPPORTED,
                  codes.PAYMENT_PROVIDER_NOT_FOUND, codes.PAYMENT_PROVIDER_ERROR])
@arguments(IdempotencyKeySchema, location="headers")
@arguments(OrderCreateSchema)
def create(body, headers):
    """Create an order and its payment request (201); a repeated Idempotency-Key header answers the first (200)."""
    shown, created = orders.create_order(current_user().user_id, body, headers["key"])
    return shown if created else (shown, 200)


@bp.get("/status/<order_no>")
@documented(parameters=[ORDER_NO])
@login_required(prefetch=orders.snapshot_key)
@response(OrderSchema, errors=[codes.ORDER_NOT_FOUND])
def status(order_no: str):
    """One of the caller's orders."""
    user = current_user()
    return orders.order_status(user.user_id, order_no, user.prefetched)


@bp.get("/list")
@login_required
@response(OrderPageSchema)
@arguments(OrderListQuerySchema, location="query")
def list_orders(query):
    """The caller's orders, newest first, a page at a time, optionally of one status."""
    return orders.list_orders(current_user().user_id, query["page"], query["page_size"], query["status"])


@bp.post("/cancel/<order_no>")
@documented(parameters=[ORDER_NO])
@login_required
@response(OrderSchema, errors=[codes.ORDER_NOT_FOUND, codes.ORDER_INVALID_TRANSITION])
def cancel(order_no: str):
    """Cancel a pending order; 409 when it is paid, expired or cancelled already."""
    return orders.cancel_order(current_user().user_id, order_no)
