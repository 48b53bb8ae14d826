"""/api/payment: notifications from payment providers (no user; each provider signs its own)."""

from __future__ import annotations

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState

import codes
from api import response
from errors import ApiError
from schemas.payment import NotifyResultSchema
from services import payments
from services.payments.notify import handle_notification

bp = Blueprint("payment", __name__, url_prefix="/api/payment")


@bp.record
def build_providers(state: BlueprintSetupState) -> None:
    payments.init_app(state.app)


@bp.post("/notify/<provider>")
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
        return gateway.refuse(error)
