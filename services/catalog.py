"""What is for sale: the `products` list of the config, read per request."""

from __future__ import annotations

from typing import Any

from flask_babel import get_locale

from config import settings


def localized_name(product: Any, locale: str | None = None) -> str:
    """The product's name in locale, else its language, else the default language, else any."""
    names = product.name
    locale = locale or str(get_locale())
    language = locale.split("_")[0]
    fallback = settings.app.default_language
    for key in (locale, language, fallback, fallback.split("_")[0]):
        if key in names:
            return names[key]
    for key, name in names.items():  # e.g. "zh" configured while the locale is "zh_Hans"
        if key.split("_")[0] == language:
            return name
    return next(iter(names.values()))


def public_product(product: Any) -> dict[str, Any]:
    return {"id": product.id, "name": localized_name(product), "price": product.price,
            "currency": product.currency}


def list_products() -> list[dict[str, Any]]:
    """The active products, named in the request's language."""
    return [public_product(product) for product in settings.products if product.active]


def find_product(product_id: str) -> Any:
    """The active product with this id, or None: a retired product cannot be ordered."""
    return next((p for p in settings.products if p.id == product_id and p.active), None)
