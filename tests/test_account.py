"""A signed-in user looks after their own account: profile, password, sessions by device."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import codes
from extensions import db
from models import OrderModel, UserModel
from tests.helpers import AUTH, PASSWORD, bearer, code_in, me, refresh, register

NEW_PASSWORD = "a new passphrase"


def login(client, device_id=None, password=PASSWORD, email="alice@example.com"):
    body = {"email": email, "password": password, **({"device_id": device_id} if device_id else {})}
    return client.post(f"{AUTH}/login", json=body)


def sessions_of(client, token):
    response = client.get(f"{AUTH}/sessions", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["items"]


def test_a_new_nickname_shows_at_once_in_me(client, user):
    answer = client.patch(f"{AUTH}/me", json={"nickname": "小爱"}, headers=bearer(user["access_token"]))
    assert answer.status_code == 200
    assert answer.get_json()["data"]["nickname"] == "小爱"
    assert me(client, user["access_token"]).get_json()["data"]["nickname"] == "小爱"
    cleared = client.patch(f"{AUTH}/me", json={"nickname": None}, headers=bearer(user["access_token"]))
    assert cleared.get_json()["data"]["nickname"] is None
    assert me(client, user["access_token"]).get_json()["data"]["nickname"] is None


def test_a_profile_change_is_checked_field_by_field(client, user):
    for body in ({}, {"nickname": "x" * 65}, {"nickname": 7}, {"nickname": "ok", "email": "b@example.com"}):
        answer = client.patch(f"{AUTH}/me", json=body, headers=bearer(user["access_token"]))
        assert answer.status_code == 422, body
    assert me(client, user["access_token"]).get_json()["data"]["email"] == "alice@example.com"


def test_a_password_change_ends_every_earlier_token_and_hands_this_device_a_fresh_pair(client, user):
    phone = login(client, "phone").get_json()["data"]
    laptop = login(client, "laptop").get_json()["data"]
    copied = refresh(client, laptop["refresh_token"]).get_json()["data"]  # say a thief holds these
    answer = client.post(f"{AUTH}/password", headers=bearer(copied["access_token"]),
                         json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    fresh = answer.get_json()["data"]
    for pair in (user, phone, laptop, copied):
        assert me(client, pair["access_token"]).status_code == 401
        assert refresh(client, pair["refresh_token"]).status_code == 401
    assert me(client, fresh["access_token"]).status_code == 200
    [session] = sessions_of(client, fresh["access_token"])
    assert session["device_id"] == "laptop" and session["current"]
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_a_wrong_current_password_changes_nothing_and_counts_toward_the_lockout(client, user):
    wrong = {"current_password": "not it", "new_password": NEW_PASSWORD}
    answers = [client.post(f"{AUTH}/password", headers=bearer(user["access_token"]), json=wrong)
               for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 5 + [423]
    assert answers[0].get_json()["code"] == codes.AUTH_INVALID_CREDENTIALS.code
    assert login(client).status_code == 423  # the same lock as five wrong logins
    assert me(client, user["access_token"]).status_code == 200  # and the sessions stand


def test_sessions_list_each_device_and_mark_the_one_asking(client, user):
    phone = login(client, "phone-1").get_json()["data"]
    listed = sessions_of(client, phone["access_token"])
    assert len(listed) == 2
    assert [s["device_id"] for s in listed] == ["phone-1", None]  # newest use first
    assert [s["current"] for s in listed] == [True, False]
    assert all(s["ip"] == "127.0.0.1" and s["created_at"] and s["last_used_at"] for s in listed)
    assert [s["current"] for s in sessions_of(client, user["access_token"])] == [False, True]


def test_ending_another_session_stops_its_tokens_at_once(client, user):
    phone = login(client, "phone-1").get_json()["data"]
    [phone_session] = [s for s in sessions_of(client, user["access_token"]) if s["device_id"] == "phone-1"]
    ended = client.delete(f"{AUTH}/sessions/{phone_session['id']}", headers=bearer(user["access_token"]))
    assert ended.status_code == 200
    assert me(client, phone["access_token"]).status_code == 401
    assert refresh(client, phone["refresh_token"]).status_code == 401
    assert me(client, user["access_token"]).status_code == 200
    assert len(sessions_of(client, user["access_token"])) == 1
    again = client.delete(f"{AUTH}/sessions/{phone_session['id']}", headers=bearer(user["access_token"]))
    assert again.status_code == 404


def test_another_users_session_answers_like_a_missing_one(client, user):
    bob = register(client, "bob@example.com")
    [bobs] = sessions_of(client, bob["access_token"])
    missing = client.delete(f"{AUTH}/sessions/no-such-session", headers=bearer(user["access_token"]))
    theirs = client.delete(f"{AUTH}/sessions/{bobs['id']}", headers=bearer(user["access_token"]))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert theirs.get_json()["code"] == codes.AUTH_SESSION_NOT_FOUND.code
    assert me(client, bob["access_token"]).status_code == 200


def test_account_endpoints_need_sign_in(client):
    for method, path in (("patch", "/me"), ("post", "/password"), ("get", "/sessions"), ("delete", "/sessions/x")):
        answer = getattr(client, method)(AUTH + path, json={})
        assert answer.status_code == 401, path
        assert answer.get_json()["code"] == codes.AUTH_TOKEN_MISSING.code


# --- forgotten password --------------------------------------------------------------------------

def forgot(client, email="alice@example.com"):
    return client.post(f"{AUTH}/password/forgot", json={"email": email})


def reset(client, code, email="alice@example.com", new_password=NEW_PASSWORD):
    return client.post(f"{AUTH}/password/reset", json={"email": email, "code": code, "new_password": new_password})


def test_a_mailed_reset_code_sets_a_new_password_once_and_ends_every_session(client, user, smtp):
    phone = login(client, "phone").get_json()["data"]
    in_grace = refresh(client, phone["refresh_token"])  # rotated: still inside its 30 s grace window
    assert in_grace.status_code == 200
    assert forgot(client).get_json()["data"] == {"resend_after": 60}
    mail = smtp.last_to("alice@example.com")
    assert mail["Subject"] == "Your password reset code"
    code = code_in(mail)

    answer = reset(client, code)
    assert answer.status_code == 200, answer.get_json()
    fresh = answer.get_json()["data"]
    for token in (user["access_token"], phone["access_token"], in_grace.get_json()["data"]["access_token"]):
        assert me(client, token).status_code == 401
    for token in (user["refresh_token"], phone["refresh_token"], in_grace.get_json()["data"]["refresh_token"]):
        assert refresh(client, token).status_code == 401
    assert me(client, fresh["access_token"]).status_code == 200
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200
    assert reset(client, code, new_password="yet another one").get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


def test_a_login_code_cannot_reset_and_a_reset_code_cannot_log_in(client, user, smtp):
    client.post(f"{AUTH}/send-email-code", json={"email": "alice@example.com"})
    login_code = code_in(smtp.last_to("alice@example.com"))
    assert reset(client, login_code).status_code == 400
    forgot(client)
    reset_code = code_in(smtp.last_to("alice@example.com"))
    assert client.post(f"{AUTH}/email-verify-login",
                       json={"email": "alice@example.com", "code": reset_code}).status_code == 400
    assert login(client).status_code == 200  # the password is untouched


def test_forgot_answers_and_mails_alike_for_an_email_without_an_account(client, user, smtp):
    known, unknown = forgot(client), forgot(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.get_json() == unknown.get_json()
    assert smtp.last_to("nobody@example.com")["Subject"] == smtp.last_to("alice@example.com")["Subject"]
    assert forgot(client, "nobody@example.com").status_code == 429  # the same resend window


def test_a_reset_lifts_a_lockout(client, user, smtp):
    for _ in range(5):
        login(client, password="wrong password")
    assert login(client).status_code == 423
    forgot(client)
    assert reset(client, code_in(smtp.last_to("alice@example.com"))).status_code == 200
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_a_reset_is_checked_field_by_field(client, user):
    for body in ({"email": "alice@example.com", "code": "123456"},
                 {"email": "alice@example.com", "code": "12345", "new_password": NEW_PASSWORD},
                 {"email": "alice@example.com", "code": "123456", "new_password": "short"},
                 {"email": "not an email", "code": "123456", "new_password": NEW_PASSWORD}):
        assert client.post(f"{AUTH}/password/reset", json=body).status_code == 422, body
    assert login(client).status_code == 200


def test_the_reset_mail_is_in_the_language_of_the_request(client, user, smtp):
    client.post(f"{AUTH}/password/forgot?lang=zh", json={"email": "alice@example.com"})
    mail = smtp.last_to("alice@example.com")
    assert mail["Subject"] == "您的密码重置验证码"
    assert "密码不会改变" in mail.get_content()


# --- leaving -------------------------------------------------------------------------------------

def test_deleting_the_account_ends_its_sessions_keeps_its_orders_and_frees_the_email(app, client, user):
    headers = bearer(user["access_token"])
    phone = login(client, "phone").get_json()["data"]
    order = client.post("/api/client/order/create", json={"product_id": "basic-monthly"}, headers=headers)
    assert order.status_code == 201
    order_no = order.get_json()["data"]["order_no"]

    assert client.delete(f"{AUTH}/me", json={"password": "wrong"}, headers=headers).status_code == 401
    answer = client.delete(f"{AUTH}/me", json={"password": PASSWORD}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    for pair in (user, phone):
        assert me(client, pair["access_token"]).status_code == 401
        assert refresh(client, pair["refresh_token"]).status_code == 401
    assert login(client).status_code == 401

    with app.app_context():  # the order stays on record, with the emptied account it names
        stored = db.session.scalar(select(OrderModel).where(OrderModel.order_no == order_no))
        owner = db.session.get(UserModel, stored.user_id)
        assert owner.deleted_at is not None and owner.password_hash is None and owner.nickname is None
        assert "alice" not in owner.email
    again = register(client, "alice@example.com")
    assert again["user"]["id"] != user["id"]
    assert client.get("/api/client/order/list", headers=bearer(again["access_token"])).get_json()["data"]["total"] == 0


def test_an_account_without_a_password_is_deleted_with_a_mailed_code(make_app, smtp):
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    client.post(f"{AUTH}/send-email-code", json={"email": "bob@example.com"})
    bob = client.post(f"{AUTH}/email-verify-login", json={
        "email": "bob@example.com", "code": code_in(smtp.last_to("bob@example.com"))}).get_json()["data"]
    headers = bearer(bob["access_token"])
    assert client.delete(f"{AUTH}/me", json={"password": PASSWORD}, headers=headers).status_code == 401
    client.post(f"{AUTH}/send-email-code", json={"email": "bob@example.com"})
    code = code_in(smtp.last_to("bob@example.com"))
    wrong = "000000" if code != "000000" else "111111"
    assert client.delete(f"{AUTH}/me", json={"code": wrong}, headers=headers).status_code == 400
    assert me(client, bob["access_token"]).status_code == 200
    assert client.delete(f"{AUTH}/me", json={"code": code}, headers=headers).status_code == 200
    assert me(client, bob["access_token"]).status_code == 401


def test_deleting_needs_exactly_one_proof(client, user):
    headers = bearer(user["access_token"])
    for body in ({}, {"password": PASSWORD, "code": "123456"}, {"code": "12345"}):
        assert client.delete(f"{AUTH}/me", json=body, headers=headers).status_code == 422, body
    assert me(client, user["access_token"]).status_code == 200


@pytest.mark.parametrize("password", ["password123", "Qwertyuiop", "iloveyou1"])
def test_a_common_password_is_refused_at_register_change_and_reset_in_both_languages(client, user, password):
    registered = client.post("/api/client/auth/register", json={"email": "new@example.com", "password": password},
                             headers={"Accept-Language": "zh-CN"})
    assert registered.status_code == 422
    assert registered.get_json()["data"]["fields"]["password"] == ["这个密码太常见了，请换一个。"]
    changed = client.post("/api/client/auth/password", json={"current_password": PASSWORD, "new_password": password},
                          headers=bearer(user["access_token"]))
    assert changed.get_json()["data"]["fields"]["new_password"] == ["This password is too common: choose another."]
    reset = client.post("/api/client/auth/password/reset", json={"email": user["email"], "code": "123456",
                                                                 "new_password": password})
    assert reset.status_code == 422 and "new_password" in reset.get_json()["data"]["fields"]


def test_two_common_passwords_joined_by_a_comma_are_not_one(client):
    assert client.post("/api/client/auth/register", json={"email": "comma@example.com",
                                                          "password": "123456,password"}).status_code == 201


def test_a_password_that_is_the_name_in_the_email_is_refused(client):
    named = "The password must not be the name in your email address."
    registered = client.post("/api/client/auth/register", json={"email": "margherita@example.com",
                                                                "password": "Margherita"})
    assert registered.get_json()["data"]["fields"]["password"] == [named]
    pair = register(client, "margherita@example.com")
    changed = client.post("/api/client/auth/password", json={"current_password": PASSWORD,
                                                             "new_password": "MARGHERITA"},
                          headers=bearer(pair["access_token"]))
    assert (changed.status_code, changed.get_json()["data"]["fields"]["new_password"]) == (422, [named])
    assert login(client, email="margherita@example.com").status_code == 200  # the password stayed
