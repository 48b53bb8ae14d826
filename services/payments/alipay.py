"""Alipay: the page-pay URL signed RSA2 with the app key; async notifications verified with Alipay's key.

Alipay signs `k=v&k=v...` of every non-empty parameter sorted by key (requests exclude only
`sign`; notifications exclude `sign` and `sign_type`), SHA256withRSA, base64. It
answers in Beijing time (UTC+8) and amounts as yuan strings with two decimals.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Response

import codes
from errors import ApiError
from models import OrderModel
from services.payments.base import Notification, Outcome, PaymentRequest, check_timestamp

BEIJING = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
NOTIFY_PATH = "/api/payment/notify/alipay"


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """A PEM key, or the bare base64 (PKCS#8 or PKCS#1 DER) that Alipay's key tool prints."""
    text = text.strip()
    if text.startswith("-----"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        key = serialization.load_der_private_key(base64.b64decode(text), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    text = text.strip()
    if text.startswith("-----"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def sign_content(params: dict[str, str], exclude: tuple[str, ...]) -> bytes:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in exclude and v != "").encode()


def rsa2_sign(params: dict[str, str], key: rsa.RSAPrivateKey, exclude: tuple[str, ...] = ("sign",)) -> str:
    signature = key.sign(sign_content(params, exclude), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def yuan(minor: int) -> str:
    return f"{Decimal(minor) / 100:.2f}"


def minor_units(text: str) -> int:
    """'9.90' -> 990; anything that is not a whole number of fen is refused."""
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
    return int(value)


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


class AlipayProvider:
    name = "alipay"
    currencies = frozenset({"CNY"})

    def __init__(self, config: Any) -> None:
        cfg = config.alipay
        self.app_id, self.gateway, self.return_url = cfg.app_id, cfg.gateway, cfg.return_url
        try:
            self.private_key = load_private_key(cfg.private_key)
        except ValueError:
            raise ValueError("private_key is not a usable RSA private key") from None
        try:
            self.public_key = load_public_key(cfg.public_key)
        except ValueError:
            raise ValueError("public_key is not a usable RSA public key") from None
        self.notify_url = config.notify_base_url.rstrip("/") + NOTIFY_PATH
        self.tolerance = config.tolerance_seconds

    def create_payment(self, order: OrderModel) -> PaymentRequest:
        """The signed alipay.trade.page.pay URL: no call to Alipay until the buyer opens it."""
        biz = {"out_trade_no": order.order_no, "product_code": "FAST_INSTANT_TRADE_PAY",
               "total_amount": yuan(order.amount), "subject": order.subject,
               "time_expire": beijing(order.expires_at)}  # Alipay stops taking money when the order expires
        params = {"app_id": self.app_id, "method": "alipay.trade.page.pay", "format": "JSON", "charset": "utf-8",
                  "sign_type": "RSA2", "timestamp": beijing(datetime.now(UTC)), "version": "1.0",
                  "notify_url": self.notify_url,
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        if self.return_url:
            params["return_url"] = self.return_url.replace("{order_no}", order.order_no)
        params["sign"] = rsa2_sign(params, self.private_key)
        return PaymentRequest(self.name, pay_url=f"{self.gateway}?{urlencode(params)}")

    def parse_notification(self, body: bytes, headers: Any) -> Notification | None:
        try:
            text = body.decode()
            params = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        except ValueError:
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID) from None
        self._verify(params)
        if params.get("app_id") != self.app_id:  # genuine, but for another of the merchant's apps
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
        check_timestamp(self._notify_time(params), self.tolerance)
        if params.get("trade_status") not in PAID_STATUSES:
            return None  # WAIT_BUYER_PAY, TRADE_CLOSED: nothing was paid
        if not params.get("out_trade_no") or not params.get("trade_no"):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
        return Notification(params["out_trade_no"], params["trade_no"], minor_units(params.get("total_amount", "")),
                            "CNY", text)  # Alipay settles in yuan only

    def _verify(self, params: dict[str, str]) -> None:
        try:
            signature = base64.b64decode(params.get("sign", ""), validate=True)
            self.public_key.verify(signature, sign_content(params, ("sign", "sign_type")), padding.PKCS1v15(),
                                   hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID) from None

    @staticmethod
    def _notify_time(params: dict[str, str]) -> float:
        try:
            return datetime.strptime(params.get("notify_time", ""), TIME_FORMAT).replace(tzinfo=BEIJING).timestamp()
        except ValueError:
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID) from None

    def acknowledge(self, outcome: Outcome) -> Response:
        return Response("success", mimetype="text/plain")  # Alipay retries until it reads exactly this

    def refuse(self, error: ApiError) -> Response:
        return Response("fail", status=error.code.status, mimetype="text/plain")
