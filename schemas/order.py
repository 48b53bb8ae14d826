"""Request and response schemas of /api/client/order."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validates

from config import settings
from models import OrderStatus
from schemas.common import Timestamp, WholeNumber, between, length, one_of

MAX_PAGE = 10_000  # deeper pages cost a long OFFSET scan; nobody pages that far by hand
DEFAULT_PAGE_SIZE = 20


class ProductSchema(Schema):
    id = fields.String()
    name = fields.String(metadata={"description": "in the request's language"})
    price = fields.Integer(metadata={"description": "integer minor units (cents, fen)"})
    currency = fields.String(metadata={"example": "CNY"})


class ProductListSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema))


class OrderCreateSchema(Schema):
    product_id = fields.String(required=True, validate=length(min=1, max=64))
    quantity = WholeNumber(load_default=1, validate=between(1, 99))
    # The document lists the enabled providers (api.build_spec reads "providers").
    provider = fields.String(load_default=None, metadata={
        "providers": True, "shared_as": "PaymentProvider",
        "description": "an enabled payment provider; absent or null: payment.default"})

    @validates("provider")
    def check_provider(self, value: str | None, **kwargs: Any) -> None:
        if value is not None:  # the enabled providers are per app, so they are checked per request
            one_of(settings.payment.providers)(value)


class IdempotencyKeySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # every other header

    key = fields.String(data_key="Idempotency-Key", load_default=None, validate=length(min=1, max=64))


class OrderSchema(Schema):
    order_no = fields.String()
    product_id = fields.String()
    quantity = fields.Integer()
    amount = fields.Integer(metadata={"description": "integer minor units"})
    currency = fields.String()
    subject = fields.String()
    status = fields.String(metadata={"enum": [status.value for status in OrderStatus], "shared_as": "OrderStatus"})
    payment_provider = fields.String(allow_none=True)
    transaction_id = fields.String(allow_none=True)
    created_at = Timestamp()
    expires_at = Timestamp()
    paid_at = Timestamp(allow_none=True)
    cancelled_at = Timestamp(allow_none=True)
    refunded_amount = fields.Integer(metadata={"description": "minor units given back to the buyer so far"})


class PaymentRequestSchema(Schema):
    provider = fields.String()
    pay_url = fields.String(allow_none=True, metadata={"description": "where to send the buyer, if anywhere"})
    params = fields.Dict(allow_none=True, metadata={"description": "what the client needs besides the URL"})


class OrderCreatedSchema(OrderSchema):
    payment = fields.Nested(PaymentRequestSchema, allow_none=True,
                            metadata={"description": "null once the order is no longer PENDING"})


class OrderListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # ?lang= and the like travel in the same query string

    page = WholeNumber(in_query=True, load_default=1, validate=between(1, MAX_PAGE))
    page_size = WholeNumber(in_query=True, load_default=DEFAULT_PAGE_SIZE, validate=between(1, 100))
    # Not nullable: absent means every status; "null" is no status.
    status = fields.String(load_default=None, allow_none=False, metadata={"shared_as": "OrderStatus"},
                           validate=one_of([status.value for status in OrderStatus]))


class OrderPageSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
