"""Schemas of /api/payment and of the dev provider's notification body."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from schemas.common import WholeNumber


class NotifyResultSchema(Schema):
    outcome = fields.String(metadata={"description": "paid, needs_refund, duplicate or ignored"})
    order_no = fields.String(allow_none=True)


class DevNotificationSchema(Schema):
    """{"order_no", "transaction_id", "amount", "currency"}: what `flask pay-order` sends."""

    class Meta:
        unknown = EXCLUDE

    order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    transaction_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    amount = WholeNumber(required=True, validate=validate.Range(min=0, max=2**62))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"))
