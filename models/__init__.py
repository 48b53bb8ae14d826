"""Persistence: flask-sqlalchemy models and their state rules. No commits here."""

from models.account_event import AccountEventModel
from models.order import OrderModel, OrderStatus
from models.passkey import PasskeyModel
from models.payment import (
    REFUSED_OUTCOMES,
    CheckoutModel,
    DevLedgerModel,
    PaymentModel,
    PaymentOutcome,
    RefundModel,
    RefundStatus,
)
from models.user import UserModel

__all__ = ["AccountEventModel", "CheckoutModel", "DevLedgerModel", "OrderModel", "OrderStatus", "PasskeyModel",
           "PaymentModel",
           "PaymentOutcome", "REFUSED_OUTCOMES", "RefundModel", "RefundStatus", "UserModel"]
