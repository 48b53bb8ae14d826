"""Persistence: flask-sqlalchemy models and their state rules. No commits here."""

from models.order import OrderModel, OrderStatus
from models.payment import PaymentModel, PaymentOutcome
from models.user import UserModel

__all__ = ["OrderModel", "OrderStatus", "PaymentModel", "PaymentOutcome", "UserModel"]
