"""With auth.require_email_confirmation, registering proves the mailbox first and tells nobody
whether the address already has an account."""

from __future__ import annotations

import pytest

import codes
from tests.helpers import AUTH, PASSWORD, bearer, code_in, register


@pytest.fixture
def confirming(make_app):
    return make_app(auth__require_email_confirmation=True, auth__email_code_resend_seconds=0).test_client()


def sign_up(client, email="carol@example.com", password=PASSWORD):
    return client.post(f"{AUTH}/register", json={"email": email, "password": password, "nickname": "Carol"})


def confirm(client, code, email="carol@example.com", password=PASSWORD):
    return client.post(f"{AUTH}/register/confirm", json={"email": email, "code": code, "password": password})


def login(client, email="carol@example.com", password=PASSWORD):
    return client.post(f"{AUTH}/login", json={"email": email, "password": password})


def test_only_the_mailed_code_creates_the_account(confirming, smtp):
    answer = sign_up(confirming)
    assert answer.status_code == 202
    assert answer.get_json()["data"] == {"resend_after": 0}
    assert login(confirming).status_code == 401  # nothing exists yet
    mail = smtp.last_to("carol@example.com")
    assert mail["Subject"] == "Confirm your email"

    created = confirm(confirming, code_in(mail))
    assert created.status_code == 201, created.get_json()
    data = created.get_json()["data"]
    assert data["user"]["email"] == "carol@example.com" and data["user"]["nickname"] == "Carol"
    assert confirming.get(f"{AUTH}/me", headers=bearer(data["access_token"])).status_code == 200
    assert login(confirming).status_code == 200
    assert confirm(confirming, code_in(mail)).get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


def test_a_new_and_a_taken_email_get_the_same_answer(confirming, client, smtp):
    register(client, "alice@example.com")
    taken, new = sign_up(confirming, "alice@example.com"), sign_up(confirming, "dave@example.com")
    assert taken.status_code == new.status_code == 202
    assert taken.get_data() == new.get_data()
    assert {k: v for k, v in taken.headers if k != "X-Request-ID"} == {k: v for k, v in new.headers
                                                                        if k != "X-Request-ID"}
    assert smtp.last_to("alice@example.com")["Subject"] == "You already have an account"
    assert login(client, "alice@example.com").status_code == 200  # the account is untouched


def test_confirming_answers_alike_for_a_new_and_a_taken_email(confirming, client, smtp):
    register(client, "alice@example.com")
    for email in ("alice@example.com", "dave@example.com"):
        sign_up(confirming, email)
    code = code_in(smtp.last_to("dave@example.com"))
    wrong = "000000" if code != "000000" else "111111"
    taken, new = confirm(confirming, wrong, "alice@example.com"), confirm(confirming, wrong, "dave@example.com")
    assert taken.status_code == new.status_code == 400
    assert taken.get_json() == new.get_json()
    assert confirm(confirming, wrong, "alice@example.com", "other password").get_json() == \
        confirm(confirming, wrong, "dave@example.com", "other password").get_json()
    never = confirm(confirming, wrong, "frank@example.com")  # no registration at all
    assert never.get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


def test_a_second_registration_replaces_the_first_and_needs_its_own_password(confirming, smtp):
    sign_up(confirming, password="first password")
    first_code = code_in(smtp.last_to("carol@example.com"))
    sign_up(confirming, password="second password")
    second_code = code_in(smtp.last_to("carol@example.com"))
    # the pending registration is the second one now: its password, and then its code
    assert confirm(confirming, first_code, password="first password").status_code == 401
    assert confirm(confirming, first_code, password="second password").status_code == 400
    assert confirm(confirming, second_code, password="first password").status_code == 401
    assert confirm(confirming, second_code, password="second password").status_code == 201
    assert login(confirming, password="second password").status_code == 200


def test_login_and_code_login_work_the_same_with_confirmation_on(confirming, client, smtp):
    register(client, "alice@example.com")
    assert login(confirming, "alice@example.com").status_code == 200
    confirming.post(f"{AUTH}/send-email-code", json={"email": "erin@example.com"})
    code = code_in(smtp.last_to("erin@example.com"))
    assert confirming.post(f"{AUTH}/email-verify-login",
                           json={"email": "erin@example.com", "code": code}).status_code == 200
