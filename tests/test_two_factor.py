"""Two-factor sign-in with an authenticator app, for a client that keeps only tokens."""

import time
from datetime import UTC, datetime

import pyotp
import pytest

from tests.helpers import AUTH, PASSWORD, bearer, code_in, login, me, send_code


def post(client, path, token=None, **body):
    return client.post(f"{AUTH}{path}", json=body, headers=bearer(token) if token else {})


def code_for(secret, at=None):
    totp = pyotp.TOTP(secret)
    return totp.at(at or datetime.now(UTC))


def enabled(client, user):
    """Two-factor on for the user: (the secret, the recovery codes)."""
    setup = post(client, "/2fa/setup", user["access_token"]).get_json()["data"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/") and setup["qr_svg"].startswith("<svg")
    recovery = post(client, "/2fa/enable", user["access_token"], code=code_for(setup["secret"]))
    assert recovery.status_code == 200, recovery.get_json()
    return setup["secret"], recovery.get_json()["data"]["recovery_codes"]


def challenge(client, email="alice@example.com"):
    answer = login(client, email, PASSWORD)
    assert answer.status_code == 202, answer.get_json()
    data = answer.get_json()["data"]
    assert data["mfa_required"] is True and "access_token" not in data
    return data["mfa_token"]


def next_step_code(secret):
    """A code of the next 30 s step (accepted: one step either side of now), unlike the one just used."""
    return code_for(secret, datetime.fromtimestamp(time.time() + 30, UTC))


def test_with_two_factor_on_a_password_is_not_enough_and_a_code_finishes_the_login(client, user):
    secret, _ = enabled(client, user)
    token = challenge(client)
    signed_in = post(client, "/2fa/verify", mfa_token=token, code=next_step_code(secret))
    assert signed_in.status_code == 200
    assert me(client, signed_in.get_json()["data"]["access_token"]).status_code == 200
    assert post(client, "/2fa/verify", mfa_token=token, code=next_step_code(secret)).status_code == 401  # once


def test_a_code_is_accepted_once_in_its_window(client, user):
    secret, _ = enabled(client, user)  # the current step's code is spent by enabling
    replayed = post(client, "/2fa/verify", mfa_token=challenge(client), code=code_for(secret))
    assert replayed.status_code == 401


def test_a_recovery_code_works_once(client, user):
    _, recovery = enabled(client, user)
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[0]).status_code == 200
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[0]).status_code == 401
    assert post(client, "/2fa/verify", mfa_token=challenge(client), recovery_code=recovery[1]).status_code == 200


def test_five_wrong_codes_lock_the_account_like_wrong_passwords(client, user):
    enabled(client, user)
    answers = [post(client, "/2fa/verify", mfa_token=challenge(client), code="000000").status_code
               for _ in range(5)]
    assert answers == [401] * 5
    assert login(client, "alice@example.com", PASSWORD).status_code == 423  # as after five wrong passwords


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
def test_two_factor_turns_off_with_a_code_or_the_password_and_then_a_password_login_suffices(client, user,
                                                                                           proof):
    secret, _ = enabled(client, user)
    body = {"code": next_step_code(secret)} if proof == "code" else {"password": PASSWORD}
    assert post(client, "/2fa/disable", user["access_token"], **body).status_code == 200
    assert login(client, "alice@example.com", PASSWORD).status_code == 200


def test_setting_up_twice_or_enabling_without_set_up_is_refused(client, user):
    assert post(client, "/2fa/enable", user["access_token"], code="123456").get_json()["code"] == 10025
    enabled(client, user)
    assert post(client, "/2fa/setup", user["access_token"]).get_json()["code"] == 10024


def test_a_password_reset_leaves_two_factor_on(client, user, smtp):
    enabled(client, user)
    post(client, "/password/forgot", email="alice@example.com")
    reset = post(client, "/password/reset", email="alice@example.com",
                 code=code_in(smtp.last_to("alice@example.com")), new_password="a brand new passphrase")
    assert reset.status_code == 200
    assert login(client, "alice@example.com", "a brand new passphrase").status_code == 202
