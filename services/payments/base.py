"""The provider interface: ask for a payment, read a notification, answer it the provider's way."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Response

import codes
from errors import ApiError, handle_api_error
from models import OrderModel

CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class PaymentRequest:
    """What the client needs to pay an order: a URL to send the buyer to, or parameters."""

    provider: str
    pay_url: str | None = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Notification:
    """A verified payment notification: the provider says this much money arrived for this order."""

    order_no: str
    transaction_id: str
    amount: int  # minor units
    currency: str
    raw: str

    def __post_init__(self) -> None:
        # Signed does not mean well-formed: refuse what the payments table could not hold.
        if not (0 < len(self.order_no) <= 64 and 0 < len(self.transaction_id) <= 128
                and 0 <= self.amount < 2**62 and CURRENCY.match(self.currency)):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)


@dataclass(frozen=True)
class Outcome:
    """What handling a notification did, for the acknowledgement."""

    outcome: str  # a PaymentOutcome value, "duplicate" or "ignored"
    order_no: str | None = None


class Provider(Protocol):
    name: str
    currencies: frozenset[str] | None  # the currencies it can charge; None: any

    def create_payment(self, order: OrderModel) -> PaymentRequest:
        """Make the payment request for an order (may call the provider; raises PAYMENT_PROVIDER_ERROR)."""
        ...

    def parse_notification(self, body: bytes, headers: Any) -> Notification | None:
        """Verify and read a notification; None for a verified event that is not a payment."""
        ...

    def acknowledge(self, outcome: Outcome) -> Any:
        """The answer the provider expects for a notification that was handled."""
        ...

    def refuse(self, error: ApiError) -> Response:
        """The answer for a notification that was refused."""
        ...


class EnvelopeAnswers:
    """Providers that take our JSON envelope as their answer (dev, stripe)."""

    def acknowledge(self, outcome: Outcome) -> Any:
        return {"outcome": outcome.outcome, "order_no": outcome.order_no}

    def refuse(self, error: ApiError) -> Response:
        return handle_api_error(error)


def check_timestamp(timestamp: float, tolerance: int, now: float | None = None) -> None:
    """Refuse a signed timestamp older (or further ahead) than tolerance seconds: a replay."""
    if abs((now or time.time()) - timestamp) > tolerance:
        raise ApiError(codes.PAYMENT_NOTIFICATION_EXPIRED)

