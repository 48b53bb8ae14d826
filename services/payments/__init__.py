"""Payment providers behind one interface: a registry of the enabled ones, built once per app.

services.payments.notify handles what they send back.
"""

from __future__ import annotations

import importlib

from flask import Flask, current_app

import codes
from config import ConfigError
from errors import ApiError
from services.payments.base import Notification, Outcome, PaymentRequest, Provider

# Imported only when enabled: the stripe package alone adds about 20 MB to every worker.
PROVIDERS: dict[str, str] = {
    "dev": "services.payments.dev:DevProvider",
    "stripe": "services.payments.stripe:StripeProvider",
    "alipay": "services.payments.alipay:AlipayProvider",
}

__all__ = ["Notification", "Outcome", "PaymentRequest", "Provider", "enabled", "get_provider", "init_app"]


def init_app(app: Flask) -> None:
    """Build the enabled providers once, so that a bad key stops the start instead of a payment."""
    config = app.config["SETTINGS"].payment
    built: dict[str, Provider] = {}
    for name in config.providers:
        module, _, class_name = PROVIDERS[name].partition(":")
        provider_class = getattr(importlib.import_module(module), class_name)
        try:
            built[name] = provider_class(config)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"payment.{name}: {exc}") from None
    app.extensions["payment_providers"] = built


def enabled(name: str | None) -> Provider | None:
    """The provider by that name, or None when it is not enabled (any more)."""
    return current_app.extensions["payment_providers"].get(name)


def get_provider(name: str) -> Provider:
    """An enabled provider, or 404."""
    provider = current_app.extensions["payment_providers"].get(name)
    if provider is None:
        raise ApiError(codes.PAYMENT_PROVIDER_NOT_FOUND)
    return provider
