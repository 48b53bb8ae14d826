"""/api/payment: notifications from payment providers (no user; each provider signs its own)."""

from __future__ import annotations

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState

import codes
import metrics
from api import documented, response
from errors import ApiError
from schemas.payment import NotifyResultSchema
from services import payments
from services.payments.dev import HEADER as DEV_HEADER
from services.payments.notify import handle_notification

bp = Blueprint("payment", __name__, url_prefix="/api/payment")


@bp.record
def build_providers(state: BlueprintSetupState) -> None:
    payments.init_app(state.app)


@bp.post("/notify/<provider>")
@documented(
    parameters=[
        {"in": "path", "name": "provider", "required": True,
         "schema": {"type": "string", "pattern": "^[a-z]{1,16}$", "maxLength": 16},
         "description": "dev, stripe or alipay; one that is not enabled answers 404"},
        {"in": "header", "name": DEV_HEADER, "required": False, "schema": {"type": "string", "maxLength": 1024},
         "description": "dev: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.\" + body>"},
        # Named here, not imported: the stripe module loads the stripe package, for enabled providers only.
        {"in": "header", "name": "Stripe-Signature", "required": False, "schema": {"type": "string", "maxLength": 4096},
         "description": "stripe: the webhook signature Stripe sends"},
    ],
    requestBody={"required": True, "description": "the provider's notification, exactly as it sent it", "content": {
        "application/json": {"schema": {"type": "object", "description": "dev: {order_no, transaction_id, amount, "
                                                                          "currency}; stripe: an event"}},
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "alipay: the async notification's parameters, signed RSA2"}},
    }},
    responses={"200": {"content": {"text/plain": {"schema": {"type": "string", "enum": ["success"]}}}},
               **{status: {"content": {"text/plain": {"schema": {"type": "string", "enum": ["fail"]}}}}
                  for status in ("400", "404")}},
)
@response(NotifyResultSchema, errors=[codes.PAYMENT_PROVIDER_NOT_FOUND, codes.PAYMENT_SIGNATURE_INVALID,
                                      codes.PAYMENT_NOTIFICATION_EXPIRED, codes.PAYMENT_NOTIFICATION_INVALID,
                                      codes.PAYMENT_AMOUNT_MISMATCH, codes.ORDER_NOT_FOUND, codes.PAYLOAD_TOO_LARGE])
def notify(provider: str):
    """Receive a provider's payment notification: raw signed body, answered the way that provider expects.

    dev: JSON body, `X-Dev-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>`; stripe: an event
    signed in `Stripe-Signature`; alipay: the form-encoded async notification, answered `success` / `fail`.
    Bad signature or stale timestamp: 400 and nothing stored. Duplicates are acknowledged without effect.
    """
    gateway = payments.get_provider(provider)
    try:
        return gateway.acknowledge(handle_notification(gateway, request.get_data(), request.headers))
    except ApiError as error:
        metrics.notification_refused(provider, error)
        return gateway.refuse(error)
