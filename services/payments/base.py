"""The provider interface: ask for a payment, read a notification, answer it the provider's way."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Response

import codes
from errors import ApiError, handle_api_error
from models import OrderModel, PaymentModel

CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class PaymentRequest:
    """What the client needs to pay an order: a URL to send the buyer to, or parameters."""

    provider: str
    pay_url: str | None = None
    params: dict[str, Any] | None = None
    checkout: str | None = None  # the provider's reference to keep for asking and closing later


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
class RefundUpdate:
    """A verified refund notification: the provider says how a refund it was asked for ended."""

    provider_refund_id: str
    status: str  # a RefundStatus value


@dataclass(frozen=True)
class CheckoutState:
    """What a provider knows of an order's payment, when asked (reconciliation)."""

    status: str  # "paid", "open" (can still be paid) or "closed" (nothing paid, and nothing can be)
    payment: Notification | None = None  # for "paid": the same Notification its webhook would bring


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    status: str  # a RefundStatus value: succeeded, or requested while the provider is still at it


class ProviderError(Exception):
    """A provider call that did not do what was asked: refused (with its message), or no answer.
    unknown is True when the call may have taken effect (a timeout): ask again with the same key."""

    def __init__(self, message: str, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


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

    def parse_notification(self, body: bytes, headers: Any) -> Notification | RefundUpdate | None:
        """Verify and read a notification; None for a verified event that is neither a payment nor a refund."""
        ...

    def query(self, order: OrderModel, checkouts: list[str]) -> CheckoutState:
        """Ask the provider what became of the order's payment (checkouts: the references made for it).
        Raises ProviderError."""
        ...

    def close(self, order: OrderModel, checkouts: list[str]) -> None:
        """Make the order impossible to pay at the provider; closing what is closed or paid is no error.
        Raises ProviderError."""
        ...

    def refund(self, payment: PaymentModel, amount: int, key: str) -> RefundResult:
        """Give back amount (minor units) of a stored payment; the same key asks once, however often
        it is sent. Raises ProviderError."""
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

