"""Two-factor sign-in with an authenticator app, for a client that keeps only tokens."""

import io
from urllib.parse import quote

import pytest
import zxingcpp
from PIL import Image

import codes
from tests.helpers import AUTH, PASSWORD, bearer, code_in, login, me, send_code, totp_code
from tests.helpers import auth_post as post


@pytest.fixture
def user(proven_user):
    """Two-factor is only for a proven address (409 10028 otherwise)."""
    return proven_user


def enabled(client, user):
    """Two-factor on for the user: (the secret, the recovery codes)."""
    setup = post(client, "/2fa/setup", user["access_token"]).get_json()["data"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/") and setup["qr_svg"].startswith("<svg")
    assert 'xmlns="http://www.w3.org/2000/svg"' in setup["qr_svg"]  # a document of its own, for an <img>
    recovery = post(client, "/2fa/enable", user["access_token"], code=totp_code(setup["secret"]))
    assert recovery.status_code == 200, recovery.get_json()
    return setup["secret"], recovery.get_json()["data"]["recovery_codes"]


def challenge(client, email="alice@example.com"):
    answer = login(client, email, PASSWORD)
    assert answer.status_code == 202, answer.get_json()
    data = answer.get_json()["data"]
    assert data["mfa_required"] is True and "access_token" not in data
    return data["mfa_token"]


def signed_in_with_both(client, secret, steps=1):
    answer = post(client, "/2fa/verify", mfa_token=challenge(client), code=totp_code(secret, steps))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["data"]


def test_with_two_factor_on_a_password_is_not_enough_and_a_code_finishes_the_login(client, user):
    secret, _ = enabled(client, user)
    token = challenge(client)
    signed_in = post(client, "/2fa/verify", mfa_token=token, code=totp_code(secret, 1))
    assert signed_in.status_code == 200
    assert me(client, signed_in.get_json()["data"]["access_token"]).status_code == 200
    assert post(client, "/2fa/verify", mfa_token=token, code=totp_code(secret, 1)).status_code == 401  # once


def test_a_code_is_accepted_once_in_its_window_and_a_replay_is_a_two_factor_refusal(client, user):
    secret, _ = enabled(client, user)  # the current step's code is spent by enabling
    replayed = post(client, "/2fa/verify", mfa_token=challenge(client), code=totp_code(secret))
    assert replayed.status_code == 401 and replayed.get_json()["code"] == codes.AUTH_TWO_FACTOR_CODE_INVALID.code


def test_a_recovery_code_works_once(client, user):
    _, recovery = enabled(client, user)
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[0]).status_code == 200
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[0]).status_code == 401
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[1]).status_code == 200


def test_five_wrong_codes_lock_the_second_step_and_not_the_password(client, user):
    secret, _ = enabled(client, user)
    answers = [post(client, "/2fa/verify", mfa_token=challenge(client), code="000000").status_code
               for _ in range(5)]
    assert answers == [401] * 5
    locked = post(client, "/2fa/verify", mfa_token=challenge(client), code=totp_code(secret, 1))
    assert locked.status_code == 423 and locked.headers["Retry-After"]


def test_the_activity_says_the_sign_in_used_the_password_and_the_authenticator(client, user):
    secret, _ = enabled(client, user)
    both = signed_in_with_both(client, secret)
    items = client.get(f"{AUTH}/activity", headers=bearer(both["access_token"])).get_json()["data"]["items"]
    assert (items[0]["event"], items[0]["description"]) == (
        "login_totp", "Signed in with the password and the authenticator app")


def test_a_refresh_does_not_ask_again_and_a_code_login_does(client, user, smtp):
    enabled(client, user)
    assert post(client, "/refresh", refresh_token=user["refresh_token"]).status_code == 200
    send_code(client, "alice@example.com")
    answer = post(client, "/email-verify-login", email="alice@example.com",
                  code=code_in(smtp.last_to("alice@example.com")))
    assert answer.status_code == 202 and answer.get_json()["data"]["mfa_required"] is True


def test_a_challenge_is_bound_to_its_user_and_cannot_be_forged_from_an_access_token(client, user):
    enabled(client, user)
    assert post(client, "/2fa/verify", mfa_token=user["access_token"], code="123456").status_code == 401


@pytest.mark.parametrize("proof", ["code", "password"])
def test_two_factor_turns_off_after_a_sign_in_with_both_and_then_a_password_login_suffices(client, user, proof):
    secret, _ = enabled(client, user)
    both = signed_in_with_both(client, secret)
    body = {"code": totp_code(secret, -1)} if proof == "code" else {"password": PASSWORD}
    assert post(client, "/2fa/disable", both["access_token"], **body).status_code == 200
    assert login(client, "alice@example.com", PASSWORD).status_code == 200


def test_setting_up_twice_or_enabling_without_set_up_is_refused(client, user):
    assert post(client, "/2fa/enable", user["access_token"], code="123456").get_json()["code"] == 10025
    secret, _ = enabled(client, user)
    both = signed_in_with_both(client, secret)
    assert post(client, "/2fa/setup", both["access_token"]).get_json()["code"] == 10024


def test_field_errors_of_either_or_rules_are_lists(client, user):
    for path, body in (("/2fa/verify", {"mfa_token": "x"}), ("/2fa/disable", {})):
        fields = post(client, path, user["access_token"], **body).get_json()["data"]["fields"]
        assert all(isinstance(messages, list) for messages in fields.values()), fields


@pytest.mark.live  # a browser
def test_the_qr_code_shows_as_an_image_and_reads_back_as_the_otpauth_uri(client, user, page):
    setup = post(client, "/2fa/setup", user["access_token"]).get_json()["data"]
    page.set_content(f'<img id="qr" src="data:image/svg+xml,{quote(setup["qr_svg"])}">')
    image = page.locator("#qr")
    image.wait_for()
    size = image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert size[0] > 100 and size[0] == size[1]
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.screenshot())))
    assert [barcode.text for barcode in decoded] == [setup["otpauth_uri"]]
