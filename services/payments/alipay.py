"""Alipay: the page-pay URL signed RSA2 with the app key; async notifications verified with Alipay's key.

Alipay signs `k=v&k=v...` of every non-empty parameter sorted by key (requests exclude only
`sign`; notifications exclude `sign` and `sign_type`), SHA256withRSA, base64. It
answers in Beijing time (UTC+8) and amounts as yuan strings with two decimals.

Query, close and refund are calls to the gateway (alipay.trade.query, .close, .refund): a form
POST signed like the page-pay URL, answered with JSON whose `<method>_response` value Alipay signs
as the exact text it sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Response

import codes
from errors import ApiError
from models import OrderModel, PaymentModel, RefundStatus
from models.base import utcnow
from services.payments.base import (
    CheckoutState,
    Notification,
    Outcome,
    PaymentRequest,
    ProviderError,
    RefundResult,
    RefundUpdate,
    check_timestamp,
)

BEIJING = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
NOTIFY_PATH = "/api/payment/notify/alipay"
OK = "10000"
_json = json.JSONDecoder()


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


def sign_content(params: dict[str, str], exclude: tuple[str, ...], empty: bool = False) -> bytes:
    """k=v&... sorted by key, without the excluded keys and (unless empty) the empty values."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items())
                    if k not in exclude and (empty or v != "")).encode()


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


def refund_id(trade_no: str, out_request_no: str) -> str:
    """What names a refund at Alipay: out_request_no is unique within its trade only."""
    return f"{trade_no}:{out_request_no}"


def _refusal(method: str, answer: dict[str, Any]) -> ProviderError:
    """A business answer other than 10000. Alipay's own faults (code 20000, an isp.* sub code,
    ACQ.SYSTEM_ERROR) may have taken effect, and Alipay asks to call again with the same parameters;
    the others (40004 and the isv.* sub codes) are refusals."""
    code, sub_code = str(answer.get("code")), str(answer.get("sub_code") or "")
    unknown = code == "20000" or sub_code.startswith("isp.") or sub_code == "ACQ.SYSTEM_ERROR"
    detail = answer.get("sub_msg") or answer.get("msg") or ""
    return ProviderError(f"alipay {method} {code} {sub_code}: {detail}"[:255], unknown=unknown)


class AlipayProvider:
    name = "alipay"
    currencies = frozenset({"CNY"})

    def __init__(self, config: Any) -> None:
        cfg = config.alipay
        self.app_id, self.gateway, self.return_url = cfg.app_id, cfg.gateway, cfg.return_url
        self.timeout, self.seller_id = cfg.timeout, cfg.seller_id
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

    def parse_notification(self, body: bytes, headers: Any) -> Notification | RefundUpdate | None:
        try:
            text = body.decode()
            params = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        except ValueError:
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID) from None
        self._verify(params)
        if params.get("app_id") != self.app_id:  # genuine, but for another of the merchant's apps
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
        if self.seller_id and params.get("seller_id") != self.seller_id:  # Alipay's step: the seller is ours
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
        check_timestamp(self._notify_time(params), self.tolerance)
        if params.get("out_biz_no") and params.get("refund_fee"):
            # After a refund (out_biz_no is its out_request_no): the trade's status it brings,
            # TRADE_SUCCESS or TRADE_CLOSED, is no new payment.
            if not params.get("trade_no"):
                raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
            return RefundUpdate(refund_id(params["trade_no"], params["out_biz_no"]), RefundStatus.SUCCEEDED.value)
        if params.get("trade_status") not in PAID_STATUSES:
            return None  # WAIT_BUYER_PAY, TRADE_CLOSED: nothing was paid
        if not params.get("out_trade_no") or not params.get("trade_no"):
            raise ApiError(codes.PAYMENT_NOTIFICATION_INVALID)
        return Notification(params["out_trade_no"], params["trade_no"], minor_units(params.get("total_amount", "")),
                            "CNY", text)  # Alipay settles in yuan only

    def query(self, order: OrderModel, checkouts: list[str]) -> CheckoutState:
        """The trade is named by out_trade_no (the order_no): no checkout reference is needed."""
        answer, raw = self._call("alipay.trade.query", {"out_trade_no": order.order_no})
        if answer.get("code") == OK:
            status = answer.get("trade_status")
            if status in PAID_STATUSES:
                try:  # what the notification of this trade would bring: trade_no, total_amount, yuan
                    return CheckoutState("paid", Notification(order.order_no, str(answer.get("trade_no") or ""),
                                                              minor_units(str(answer.get("total_amount"))), "CNY", raw))
                except ApiError:
                    raise ProviderError("alipay answered a paid trade without a readable trade_no or amount",
                                        unknown=True) from None
            if status == "WAIT_BUYER_PAY":
                return CheckoutState("open")
            if status == "TRADE_CLOSED":  # unpaid and timed out or closed (or paid and refunded in full)
                return CheckoutState("closed")
            raise ProviderError(f"alipay answered trade_status {status}"[:255], unknown=True)
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            # The trade is made when the buyer opens the page-pay URL, which takes money until its
            # time_expire, the order's expiry.
            return CheckoutState("closed" if order.expires_at <= utcnow() else "open")
        raise _refusal("alipay.trade.query", answer)

    def close(self, order: OrderModel, checkouts: list[str]) -> None:
        answer, _ = self._call("alipay.trade.close", {"out_trade_no": order.order_no})
        # ACQ.TRADE_STATUS_ERROR: closed or paid already. ACQ.TRADE_NOT_EXIST: the buyer never opened
        # the page-pay URL, and Alipay has nothing to close; the URL can still be opened (and paid)
        # until its time_expire, the order's expiry, after which Alipay refuses it. A payment that
        # still arrives is kept as needs_refund.
        if answer.get("code") != OK and answer.get("sub_code") not in ("ACQ.TRADE_STATUS_ERROR", "ACQ.TRADE_NOT_EXIST"):
            raise _refusal("alipay.trade.close", answer)

    def refund(self, payment: PaymentModel, amount: int, key: str) -> RefundResult:
        """out_request_no = key: Alipay refunds once per out_request_no of a trade."""
        trade = {"out_trade_no": payment.order_no, "trade_no": payment.transaction_id}
        answer, _ = self._call("alipay.trade.refund", {**trade, "refund_amount": yuan(amount), "out_request_no": key})
        if answer.get("code") != OK:
            raise _refusal("alipay.trade.refund", answer)
        # fund_change N: no money moved by this call, either because this out_request_no was
        # refunded already or because the refund is still under way; Alipay's refund query tells.
        done = answer.get("fund_change") == "Y" or self._refunded({**trade, "out_request_no": key})
        return RefundResult(refund_id(payment.transaction_id, key),
                            (RefundStatus.SUCCEEDED if done else RefundStatus.REQUESTED).value)

    def _refunded(self, refund: dict[str, str]) -> bool:
        """Whether Alipay's books hold the refund as done. Asked after a refund call that succeeded,
        so any failure here leaves the refund unknown, never refused."""
        try:
            answer, _ = self._call("alipay.trade.fastpay.refund.query", refund)
        except ProviderError as error:
            raise ProviderError(f"refund asked, not confirmed: {error}"[:255], unknown=True) from None
        if answer.get("code") != OK:
            raise ProviderError(f"refund asked, not confirmed: {_refusal('refund query', answer)}"[:255],
                                unknown=True)
        return answer.get("refund_status") == "REFUND_SUCCESS"  # absent: not (yet) refunded

    def _call(self, method: str, biz: dict[str, str]) -> tuple[dict[str, Any], str]:
        """POST one signed call to the gateway; (the verified `<method>_response` object, its signed
        text). Raises ProviderError(unknown=True) for no answer, an HTTP error or an unsigned answer."""
        params = {"app_id": self.app_id, "method": method, "format": "JSON", "charset": "utf-8",
                  "sign_type": "RSA2", "timestamp": beijing(datetime.now(UTC)), "version": "1.0",
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        params["sign"] = rsa2_sign(params, self.private_key)
        try:
            # charset in the URL too, as Alipay's SDKs send it: the gateway reads it before the body
            answer = requests.post(self.gateway, params={"charset": "utf-8"}, data=params, timeout=self.timeout)
        except requests.RequestException:
            raise ProviderError(f"alipay did not answer {method} (timeout or connection lost)", unknown=True) from None
        if answer.status_code != 200:
            raise ProviderError(f"alipay answered {method} with HTTP {answer.status_code}", unknown=True)
        return self._verified(method, answer.content)

    def _verified(self, method: str, body: bytes) -> tuple[dict[str, Any], str]:
        """Alipay signs the exact text of the `<method>_response` (or `error_response`) value as it
        sent it, not a re-serialisation: that text is cut out of the body (from after the key to the
        end of the value, as Alipay's SDKs do) and verified; what is used is parsed from it alone.
        A forged or garbled answer tells nothing, so it is unknown rather than refused."""
        try:
            text = body.decode()
            key = re.search(rf'"(?:{re.escape(method.replace(".", "_"))}_response|error_response)"\s*:\s*', text)
            answer, end = _json.raw_decode(text, key.end())
            signed = text[key.end():end]
            signature = base64.b64decode(json.loads(text)["sign"], validate=True)
            self.public_key.verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, KeyError, TypeError, AttributeError):
            raise ProviderError(f"alipay's answer to {method} is not signed by alipay", unknown=True) from None
        if not isinstance(answer, dict):
            raise ProviderError(f"alipay's answer to {method} is not an object", unknown=True)
        return answer, signed

    def _verify(self, params: dict[str, str]) -> None:
        """Alipay's documented steps sign every parameter but sign and sign_type; whether an empty
        value takes part is not said the same way everywhere (its request signing leaves them out,
        its SDKs' notification check keeps them), so a signature over either content is genuine."""
        try:
            signature = base64.b64decode(params.get("sign", ""), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID) from None
        contents = {sign_content(params, ("sign", "sign_type"), empty) for empty in (False, True)}
        if not any(self._signed(signature, content) for content in contents):
            raise ApiError(codes.PAYMENT_SIGNATURE_INVALID)

    def _signed(self, signature: bytes, content: bytes) -> bool:
        try:
            self.public_key.verify(signature, content, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

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
