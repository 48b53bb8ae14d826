"""Sign-in codes travel through a real SMTP server and work exactly once."""

import time

import pytest

import codes
from scripts.processes import free_port
from tests.helpers import AUTH, bearer, code_in, register, send_code, verify


def test_a_code_arrives_by_smtp_and_logs_in_once_creating_the_account(client, smtp):
    sent = send_code(client, " Bob@Example.com ")
    assert sent.status_code == 200
    assert sent.get_json()["data"] == {"resend_after": 60}
    mail = smtp.last_to("bob@example.com")
    assert mail["Subject"] == "Your sign-in code"
    code = code_in(mail)

    first = verify(client, code)
    assert first.status_code == 200
    data = first.get_json()["data"]
    assert data["user"]["email"] == "bob@example.com" and data["user"]["login_count"] == 1
    assert client.get(f"{AUTH}/me", headers=bearer(data["access_token"])).status_code == 200

    again = verify(client, code)
    assert again.status_code == 400
    assert again.get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


def test_the_mail_is_written_in_the_requests_language(client, smtp):
    send_code(client, **{"Accept-Language": "zh-CN"})
    mail = smtp.last_to("bob@example.com")
    assert mail["Subject"] == "您的登录验证码"
    assert f"您的登录验证码是 {code_in(mail)}" in mail.get_content()


def test_an_existing_account_signs_in_by_code_too(client, smtp, user):
    send_code(client, user["email"])
    response = verify(client, code_in(smtp.last_to(user["email"])), user["email"])
    assert response.status_code == 200
    assert response.get_json()["data"]["user"]["id"] == user["id"]


def test_the_answer_does_not_tell_whether_the_email_has_an_account(client, user):
    known = send_code(client, user["email"])
    unknown = send_code(client, "stranger@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.get_json() == unknown.get_json()


def test_a_second_request_inside_the_resend_window_is_429_with_the_seconds_left(client):
    send_code(client)
    again = send_code(client)
    assert again.status_code == 429
    body = again.get_json()
    assert body["code"] == codes.AUTH_EMAIL_CODE_TOO_SOON.code
    assert 1 <= body["data"]["retry_after"] <= 60
    assert again.headers["Retry-After"] == str(body["data"]["retry_after"])


def test_wrong_codes_burn_the_code_after_five_tries(client, smtp):
    send_code(client)
    code = code_in(smtp.last_to("bob@example.com"))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [verify(client, wrong).get_json()["code"] for _ in range(5)]
    assert answers == [codes.AUTH_EMAIL_CODE_INVALID.code] * 4 + [codes.AUTH_EMAIL_CODE_EXPIRED.code]
    burned = verify(client, code)  # even the right code is gone now
    assert burned.status_code == 400
    assert burned.get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


def test_a_code_never_sent_is_expired(client):
    response = verify(client, "123456")
    assert response.status_code == 400
    assert response.get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", ""])
def test_a_code_that_is_not_six_digits_is_a_validation_error(client, code):
    response = verify(client, code)
    assert response.status_code == 422
    assert response.get_json()["data"]["fields"]["code"] == ["Enter the 6-digit code."]


def test_an_smtp_failure_is_503_and_leaves_no_code_behind(make_app, smtp):
    client = make_app(smtp__port=free_port(), smtp__timeout=1).test_client()  # nothing listens there
    failed = send_code(client)
    assert failed.status_code == 503
    assert failed.get_json()["code"] == codes.AUTH_EMAIL_SEND_FAILED.code
    assert verify(client, "000000").get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code
    # the resend window was released, so the user can try again at once
    assert send_code(client).status_code == 503


def test_send_code_is_rate_limited_per_email(make_app):
    client = make_app(auth__email_code_resend_seconds=0, auth__rate_limits__send_code_per_email="2/hour").test_client()
    statuses = [send_code(client).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert send_code(client, "carol@example.com").status_code == 200


def test_a_code_login_lifts_a_password_lockout(client, smtp):
    register(client, "dave@example.com")
    for _ in range(5):
        client.post(f"{AUTH}/login", json={"email": "dave@example.com", "password": "wrong password"})
    send_code(client, "dave@example.com")
    assert verify(client, code_in(smtp.last_to("dave@example.com")), "dave@example.com").status_code == 200


def test_wrong_tries_count_per_code_and_a_code_mailed_later_starts_fresh(make_app, smtp):
    """Ten wrong tries over two codes used to block the address for a day, while codes that could
    not work were still mailed; now each code dies after its own tries, and the next one works."""
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    for _ in range(2):
        send_code(client)
        code = code_in(smtp.last_to("bob@example.com"))
        wrong = [verify(client, f"{(int(code) + 1) % 1_000_000:06d}").get_json()["code"] for _ in range(5)]
        assert wrong == [codes.AUTH_EMAIL_CODE_INVALID.code] * 4 + [codes.AUTH_EMAIL_CODE_EXPIRED.code]
        assert verify(client, code).get_json()["code"] == codes.AUTH_EMAIL_CODE_EXPIRED.code  # burned
    send_code(client)
    assert verify(client, code_in(smtp.last_to("bob@example.com"))).status_code == 200


def test_verify_is_rate_limited_per_ip_across_emails(make_app):
    client = make_app(auth__rate_limits__login_per_ip="3/minute").test_client()
    statuses = [verify(client, "123456", f"spray{i}@example.com").status_code for i in range(4)]
    assert statuses == [400, 400, 400, 429]


def test_an_address_with_hash_tag_braces_signs_in_by_code(client, smtp):
    """Braces are valid in an address; the keys of one email must still share one Cluster slot."""
    for address in ("}bob@example.com", "{a}b@example.com"):
        assert send_code(client, address).status_code == 200
        assert verify(client, code_in(smtp.last_to(address)), address).status_code == 200


def test_the_mailbox_owner_ends_the_account_someone_registered_with_their_address(make_app, smtp):
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    squatter = register(client, "bob@example.com", "squatter password")
    assert send_code(client).status_code == 200
    owner = verify(client, code_in(smtp.last_to("bob@example.com")))
    assert owner.status_code == 200
    owner = owner.get_json()["data"]
    assert owner["user"]["id"] == squatter["user"]["id"]  # the address holds one account: now the owner's

    assert client.get(f"{AUTH}/me", headers=bearer(squatter["access_token"])).status_code == 401
    assert client.post(f"{AUTH}/refresh", json={"refresh_token": squatter["refresh_token"]}).status_code == 401
    relogin = client.post(f"{AUTH}/login", json={"email": "bob@example.com", "password": "squatter password"})
    assert relogin.status_code == 401
    assert client.get("/api/client/order/list", headers=bearer(owner["access_token"])).status_code == 200

    # once proven, the address is not proven again: a later code login ends no other session
    assert send_code(client).status_code == 200
    again = verify(client, code_in(smtp.last_to("bob@example.com")))
    assert again.status_code == 200
    assert client.get(f"{AUTH}/me", headers=bearer(owner["access_token"])).status_code == 200


def test_requests_refused_as_too_soon_do_not_use_up_the_addresss_mail_budget(make_app):
    """Five quick requests (one mail, four refused as too soon) used to spend the address's five an
    hour, so that anyone could keep its owner from getting a code: only mails sent count now."""
    client = make_app(auth__email_code_resend_seconds=1, auth__rate_limits__send_code_per_email="2/hour").test_client()
    assert [send_code(client).status_code for _ in range(5)] == [200, 429, 429, 429, 429]
    time.sleep(1.1)
    assert send_code(client).status_code == 200  # the second mail of two
    time.sleep(1.1)
    refused = send_code(client)
    assert refused.status_code == 429 and refused.get_json()["code"] == codes.RATE_LIMITED.code
