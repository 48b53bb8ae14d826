"""Hostile input gets a 4xx envelope, never a 5xx, and stores nothing."""

import json

import pytest
from sqlalchemy import func, select

from extensions import db, redis_store
from models import UserModel
from store import keys

REGISTER = "/api/client/auth/register"
LOGIN = "/api/client/auth/login"
# Every endpoint that reads a body, the rate-limited ones included (their limit key reads the email).
BODY_ENDPOINTS = [REGISTER, LOGIN, "/api/client/auth/refresh", "/api/client/auth/send-email-code",
                  "/api/client/auth/email-verify-login"]


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(UserModel))


def assert_envelope(response, status_range=range(400, 500)):
    assert response.status_code in status_range, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"code", "data", "msg"}
    return body


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    json.dumps({"email": "a@example.com", "password": "p" * 600_000}),
    json.dumps({"email": ["a@example.com"], "password": {"x": 1}}),
    json.dumps([1, 2, 3]),
    "null",
    '"just a string"',
])
@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
def test_hostile_json_bodies(app, client, endpoint, body):
    # unreadable (400) or not the fields asked for (422): a mistake in the body, nothing else
    assert_envelope(client.post(endpoint, data=body, content_type="application/json"), status_range=(400, 422))
    assert user_count(app) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "application/json; charset=latin-1"])
def test_wrong_content_types(app, client, content_type):
    body = 'email=a@example.com&password=password123' if "json" not in content_type else '{"email": "\xe9"}'
    assert_envelope(client.post(REGISTER, data=body.encode("latin-1"), content_type=content_type))
    assert user_count(app) == 0


def test_invalid_utf8(app, client):
    raw = b'{"email": "\xff\xfe@example.com", "password": "password123"}'
    assert_envelope(client.post(REGISTER, data=raw, content_type="application/json"))
    assert user_count(app) == 0


@pytest.mark.parametrize("email", [
    "a@example.com' OR '1'='1",
    "'; DROP TABLE users; --@example.com",
    "admin@example.com\x00",
    "a@example.com\r\nBcc: victim@example.com",
    "用户@例子.广告",
    "x" * 300 + "@example.com",
])
def test_hostile_emails_are_refused_and_the_table_survives(app, client, email):
    body = assert_envelope(client.post(REGISTER, json={"email": email, "password": "password123"}))
    assert body["code"] in (10001, 10101)
    assert_envelope(client.post(LOGIN, json={"email": email, "password": "password123"}))
    assert user_count(app) == 0


def test_unicode_in_nickname_and_password_is_kept_exactly(client):
    response = client.post(REGISTER, json={"email": "u@example.com", "password": "密码密码密码密码",
                                           "nickname": "小明 🚀"})
    assert response.status_code == 201
    assert response.get_json()["data"]["user"]["nickname"] == "小明 🚀"
    assert client.post(LOGIN, json={"email": "u@example.com", "password": "密码密码密码密码"}).status_code == 200


def limiter_keys(app) -> list[str]:
    with app.app_context():
        return list(redis_store.client.scan_iter(match=redis_store.key(keys.LIMITER_PREFIX + "*"), count=1000))


def test_a_huge_email_never_becomes_a_rate_limit_key(app, client):
    huge = "a" * 200_000 + "@example.com"
    for _ in range(3):
        assert_envelope(client.post(LOGIN, json={"email": huge, "password": "password123"}))
        assert_envelope(client.post("/api/client/auth/send-email-code", json={"email": huge}))
    assert max(map(len, limiter_keys(app))) < 300


def test_the_per_ip_limit_is_checked_before_an_email_is_remembered(make_app):
    app = make_app(auth__rate_limits__login_per_ip="2/minute")
    client = app.test_client()
    statuses = [client.post(LOGIN, json={"email": f"u{i}@example.com", "password": "password123"}).status_code
                for i in range(5)]
    assert statuses == [401, 401, 429, 429, 429]
    per_email = [key for key in limiter_keys(app) if "email" in key]
    assert len(per_email) == 2


def test_bodies_without_a_valid_email_share_no_per_email_bucket(make_app):
    client = make_app(auth__rate_limits__login_per_email="2/minute").test_client()
    bodies = [{"password": "password123"}, {"email": "", "password": "x"}, {"email": "not-an-email", "password": "x"},
              {"password": "password123"}, {"email": 7}]
    assert [client.post(LOGIN, json=body).status_code for body in bodies] == [422] * 5
