"""What the stories share: the test run's database and key prefix, and plain functions that
register, sign in, order and pay through the HTTP client. Fixtures live in conftest.py; servers
in live.py. Test modules import from here, never from conftest.py or from one another."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import jwt
import pyotp
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from config import load_config
from extensions import db
from models import PaymentModel
from services import schema

BASE = load_config()
# One database and key prefix per test run (and per xdist worker), so that two runs on one machine never meet.
RUN_ID = (os.environ.get("TEST_RUN_ID") or str(os.getpid())) + os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_DB_URL = make_url(BASE.database.url).set(
    database=f"{make_url(BASE.database.url).database or 'flask_api'}_test_{RUN_ID}"
).render_as_string(hide_password=False)
TEST_PREFIX = f"{BASE.redis.key_prefix}test:{RUN_ID}:"

AUTH = "/api/client/auth"
ORDER = "/api/client/order"
DEV_NOTIFY = "/api/payment/notify/dev"
PASSWORD = "correct horse battery"


def drop_database(url: str) -> None:
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""))
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    server.dispose()


def recreate_database(url: str) -> None:
    drop_database(url)
    schema.ensure_database(url)


def wait_until(check, seconds: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {seconds} s")


# --- accounts ------------------------------------------------------------------------------------

def register(client, email: str = "alice@example.com", password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    """Register through the API; returns the response data (token pair + user)."""
    response = client.post(f"{AUTH}/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def proven(client, smtp, email: str = "alice@example.com", password: str = PASSWORD) -> dict[str, Any]:
    """Register, then prove the address with a reset to the same password (a first code login would
    clear the password, as it does a squatter's); the reset's answer: a pair and the user."""
    register(client, email, password)
    client.post(f"{AUTH}/password/forgot", json={"email": email})
    reset = client.post(f"{AUTH}/password/reset", json={"email": email, "code": code_in(smtp.last_to(email)),
                                                         "new_password": password})
    assert reset.status_code == 200, reset.get_json()
    return {"email": email, "password": password, **reset.get_json()["data"]}


def auth_post(client, path: str, token: str | None = None, **body: Any):
    """POST a JSON body to an /api/client/auth path, signed in with token if given."""
    return client.post(f"{AUTH}{path}", json=body, headers=bearer(token) if token else {})


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims as any client reads them (no key needed)."""
    return jwt.decode(token, options={"verify_signature": False})


def totp_code(secret: str, steps: int = 0) -> str:
    """The authenticator app's code of the 30 s step that many steps from now (one step either side
    of now is accepted, each once)."""
    return pyotp.TOTP(secret).at(datetime.fromtimestamp(time.time() + 30 * steps, UTC))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client, email="alice@example.com", password=PASSWORD, **extra):
    return client.post(f"{AUTH}/login", json={"email": email, "password": password, **extra})


def me(client, token):
    return client.get(f"{AUTH}/me", headers=bearer(token))


def refresh(client, token):
    return client.post(f"{AUTH}/refresh", json={"refresh_token": token})


# --- email codes ---------------------------------------------------------------------------------

def send_code(client, email="bob@example.com", **headers):
    return client.post(f"{AUTH}/send-email-code", json={"email": email}, headers=headers)


def verify(client, code, email="bob@example.com"):
    return client.post(f"{AUTH}/email-verify-login", json={"email": email, "code": code})


def code_in(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_content()).group(1)


# --- orders and payments -------------------------------------------------------------------------

def create(client, headers, product_id="basic-monthly", quantity=1, key=None, **extra):
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(f"{ORDER}/create", json={"product_id": product_id, "quantity": quantity, **extra},
                       headers=headers)


def created(client, headers, **kwargs):
    """Create an order that must succeed; its data."""
    response = create(client, headers, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def status_of(client, headers, order_no):
    return client.get(f"{ORDER}/status/{order_no}", headers=headers)


def dev_signature(secret: str, body: bytes, timestamp: int) -> str:
    """Sign the way the issue specifies, independently of the code under test."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def notify_dev(client, app, order_no, amount, currency="CNY", transaction_id="dev_txn_1", timestamp=None,
               secret=None, body=None):
    """POST a dev provider notification signed with the app's secret (or another one)."""
    body = body if body is not None else json.dumps({"order_no": order_no, "transaction_id": transaction_id,
                                                     "amount": amount, "currency": currency}).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = dev_signature(secret or app.config["SETTINGS"].payment.dev.secret, body, timestamp)
    return client.post(DEV_NOTIFY, data=body, content_type="application/json",
                       headers={"X-Dev-Signature": signature})


def payments_of(app, order_no):
    with app.app_context():
        rows = db.session.scalars(select(PaymentModel).where(PaymentModel.order_no == order_no)
                                  .order_by(PaymentModel.id)).all()
        return [(row.transaction_id, row.outcome) for row in rows]


# --- stripe and alipay ---------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


STRIPE_KEY = "sk_test_0123456789abcdef"


def stripe_settings(api_base: str) -> dict:
    return {"payment__providers": ["dev", "stripe"], "payment__stripe__secret_key": STRIPE_KEY,
            "payment__stripe__webhook_secret": WEBHOOK_SECRET, "payment__stripe__api_base": api_base,
            "payment__stripe__timeout": 1}


def stripe_event(order_no: str, amount: int, currency: str = "cny", event_type: str = "checkout.session.completed",
                 payment_intent: str = "pi_test_1") -> bytes:
    return json.dumps({"id": "evt_test_1", "object": "event", "type": event_type, "data": {"object": {
        "id": "cs_test_1", "object": "checkout.session", "payment_status": "paid", "amount_total": amount,
        "currency": currency, "payment_intent": payment_intent, "metadata": {"order_no": order_no}}}}).encode()


def stripe_signature(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>"> with the endpoint's whsec_ secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def post_stripe(client, body: bytes, signature: str):
    return client.post("/api/payment/notify/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": signature})


APP_ID = "2021000000000001"


BEIJING = timezone(timedelta(hours=8))


def pem_pair() -> tuple[rsa.RSAPrivateKey, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, private, public


def alipay_settings(alipay_keys) -> dict:
    return {"payment__providers": ["dev", "alipay"], "payment__alipay__app_id": APP_ID,
            "payment__alipay__private_key": alipay_keys["app"][1],
            "payment__alipay__public_key": alipay_keys["alipay"][2],
            "payment__alipay__gateway": "https://openapi-sandbox.dl.alipaydev.com/gateway.do",
            "payment__alipay__return_url": "https://shop.example/orders/{order_no}",
            "payment__notify_base_url": "https://api.shop.example"}


def rsa2(key: rsa.RSAPrivateKey, params: dict, exclude: tuple[str, ...]) -> str:
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in exclude and v != "")
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def alipay_notification(key: rsa.RSAPrivateKey, order_no: str, total: str, **changes: str) -> dict:
    """An async notification as Alipay posts it, signed with Alipay's key (sign and sign_type excluded)."""
    params = {"notify_time": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), "notify_type": "trade_status_sync",
              "notify_id": "ac05099524730693a8b330c5ecf72da9786", "charset": "utf-8", "version": "1.0",
              "app_id": APP_ID, "trade_no": "2024010122001400000000000001", "out_trade_no": order_no,
              "total_amount": total, "receipt_amount": total, "trade_status": "TRADE_SUCCESS",
              "gmt_payment": "2024-01-01 12:00:00", "subject": "基础版", "buyer_logon_id": "", **changes}
    return {**params, "sign_type": "RSA2", "sign": rsa2(key, params, ("sign", "sign_type"))}


def post_alipay(client, params: dict):
    return client.post("/api/payment/notify/alipay", data=urlencode(params),
                       content_type="application/x-www-form-urlencoded")
