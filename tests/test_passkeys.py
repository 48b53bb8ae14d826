"""Passkeys for a token-only client: add one, sign in with it typing nothing, manage them, and
complete the two-factor challenge with one; a software authenticator plays the device."""

import time

import pytest

import codes
from tests.authenticator import Authenticator
from tests.helpers import AUTH, PASSWORD, auth_post, bearer, claims_of, login, me, proven, register, totp_code

ORIGIN = "http://localhost:8000"  # auth.webauthn.origins of the test settings (config.py's default)
PASSKEYS = f"{AUTH}/passkeys"


@pytest.fixture
def user(proven_user):
    """Passkeys, like two-factor, are only for a proven address (409 10028 otherwise)."""
    return proven_user


def added(client, token, device=None, name="Phone"):
    """A passkey of the token's user, made by device (a new one unless given); (device, its row)."""
    device = device or Authenticator(ORIGIN)
    options = client.post(f"{PASSKEYS}/register/options", headers=bearer(token)).get_json()["data"]["options"]
    answer = client.post(f"{PASSKEYS}/register/verify", json={"credential": device.create(options), "name": name},
                         headers=bearer(token))
    assert answer.status_code == 201, answer.get_json()
    return device, answer.get_json()["data"]


def sign_in_options(client, **body):
    answer = client.post(f"{PASSKEYS}/login/options", json=body)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["data"]


def sign_in(client, device, **get_args):
    challenge = sign_in_options(client)
    credential = device.get(challenge["options"], **get_args)
    return client.post(f"{PASSKEYS}/login/verify", json={"flow_id": challenge["flow_id"], "credential": credential})


def amr(answer):
    return claims_of(answer.get_json()["data"]["access_token"])["amr"]


def test_a_user_adds_a_passkey_and_signs_in_with_it_typing_nothing(client, user):
    _, passkey = added(client, user["access_token"])
    assert (passkey["name"], passkey["transports"], passkey["backed_up"]) == ("Phone", ["internal"], False)
    device = Authenticator(ORIGIN)
    device, _ = added(client, user["access_token"], device, name="Laptop")
    options = sign_in_options(client)["options"]
    assert options["allowCredentials"] == [] and options["rpId"] == "localhost"
    signed_in = sign_in(client, device)
    assert signed_in.status_code == 200, signed_in.get_json()
    assert amr(signed_in) == ["hwk", "mfa", "pin"]  # the device verified its user: two factors in one
    assert me(client, signed_in.get_json()["data"]["access_token"]).get_json()["data"]["email"] == "alice@example.com"
    listed = client.get(PASSKEYS, headers=bearer(user["access_token"])).get_json()["data"]["items"]
    assert [(key["name"], key["last_used_at"] is not None) for key in listed] == [("Phone", False), ("Laptop", True)]


def test_a_synced_passkey_without_user_verification_is_one_factor(client, user):
    device, _ = added(client, user["access_token"], Authenticator(ORIGIN, verifies_user=False, synced=True))
    signed_in = sign_in(client, device)
    assert signed_in.status_code == 200 and amr(signed_in) == ["swk"]


def test_an_assertion_works_once_and_only_for_its_own_challenge(client, user):
    device, _ = added(client, user["access_token"])
    challenge = sign_in_options(client)
    credential = device.get(challenge["options"])
    body = {"flow_id": challenge["flow_id"], "credential": credential}
    assert client.post(f"{PASSKEYS}/login/verify", json=body).status_code == 200
    replayed = client.post(f"{PASSKEYS}/login/verify", json=body)
    assert replayed.get_json()["code"] == codes.PASSKEY_CHALLENGE_EXPIRED.code
    another = sign_in_options(client)  # a fresh flow, the old answer
    stale = client.post(f"{PASSKEYS}/login/verify", json={"flow_id": another["flow_id"], "credential": credential})
    assert stale.status_code == 400 and stale.get_json()["code"] == codes.PASSKEY_INVALID.code


def test_a_removed_passkey_no_longer_signs_in_and_removing_needs_a_recent_sign_in(make_app, smtp):
    client = make_app(auth__reauth_max_age=2).test_client()
    alice = proven(client, smtp)
    device, passkey = added(client, alice["access_token"])
    time.sleep(3)
    stale = client.delete(f"{PASSKEYS}/{passkey['id']}", headers=bearer(alice["access_token"]))
    assert stale.status_code == 401 and stale.get_json()["code"] == codes.AUTH_REAUTH_REQUIRED.code
    fresh = login(client).get_json()["data"]["access_token"]
    other = register(client, "bob@example.com")["access_token"]
    assert client.delete(f"{PASSKEYS}/{passkey['id']}", headers=bearer(other)).status_code == 404  # not bob's
    assert client.delete(f"{PASSKEYS}/{passkey['id']}", headers=bearer(fresh)).status_code == 200
    gone = sign_in(client, device)
    assert gone.status_code == 400 and gone.get_json()["code"] == codes.PASSKEY_INVALID.code


def test_a_counter_that_goes_backwards_is_refused_and_recorded(client, user):
    device, _ = added(client, user["access_token"])
    assert sign_in(client, device).status_code == 200  # the counter is 1 now
    cloned = sign_in(client, device, sign_count=1)
    assert cloned.status_code == 400 and cloned.get_json()["code"] == codes.PASSKEY_INVALID.code
    events = client.get(f"{AUTH}/activity", headers=bearer(user["access_token"])).get_json()["data"]["items"]
    assert events[0]["event"] == "passkey_counter_regression"
    assert sign_in(client, device).status_code == 200  # the real device goes on counting


def test_a_ceremony_from_another_origin_or_for_another_rp_is_refused(client, user):
    elsewhere = Authenticator("https://evil.example")
    options = client.post(f"{PASSKEYS}/register/options", headers=bearer(user["access_token"])).get_json()["data"]
    refused = client.post(f"{PASSKEYS}/register/verify", json={"credential": elsewhere.create(options["options"])},
                          headers=bearer(user["access_token"]))
    assert refused.status_code == 400 and refused.get_json()["code"] == codes.PASSKEY_INVALID.code
    device, _ = added(client, user["access_token"])
    assert sign_in(client, device, rp_id="evil.example").get_json()["code"] == codes.PASSKEY_INVALID.code


def test_sign_in_options_name_no_key_so_they_tell_nothing_of_any_account(client, user):
    added(client, user["access_token"])
    first, second = sign_in_options(client), sign_in_options(client, email="alice@example.com")
    assert first["options"]["allowCredentials"] == second["options"]["allowCredentials"] == []
    assert first["flow_id"] != second["flow_id"]


def test_the_owner_is_mailed_when_a_passkey_is_added(client, user, smtp):
    added(client, user["access_token"], name="Tablet")
    notice = smtp.last_to("alice@example.com")
    assert notice["Subject"] == "A passkey was added to your account" and "Tablet" in notice.get_content()


def test_removing_a_passkey_ends_every_other_session(client, user):
    device, passkey = added(client, user["access_token"])
    theirs = sign_in(client, device).get_json()["data"]["access_token"]
    assert client.delete(f"{PASSKEYS}/{passkey['id']}", headers=bearer(user["access_token"])).status_code == 200
    assert me(client, theirs).status_code == 401 and me(client, user["access_token"]).status_code == 200


def test_with_two_factor_on_a_passkey_completes_the_challenge(client, user):
    secret = client.post(f"{AUTH}/2fa/setup", headers=bearer(user["access_token"])).get_json()["data"]["secret"]
    assert auth_post(client, "/2fa/enable", user["access_token"], code=totp_code(secret)).status_code == 200
    code = totp_code(secret, 1)
    both = auth_post(client, "/2fa/verify", mfa_token=login(client).get_json()["data"]["mfa_token"], code=code)
    device, _ = added(client, both.get_json()["data"]["access_token"], Authenticator(ORIGIN, verifies_user=False))

    alone = sign_in(client, device)  # one factor, two-factor on: the challenge, which the same key cannot meet
    assert alone.status_code == 202 and alone.get_json()["data"]["needs"] == ["recovery", "totp"]
    code = totp_code(secret, -1)
    with_totp = auth_post(client, "/2fa/verify", mfa_token=alone.get_json()["data"]["mfa_token"], code=code)
    assert with_totp.status_code == 200 and amr(with_totp) == ["hwk", "mfa", "totp"]
    password_first = login(client).get_json()["data"]
    assert password_first["needs"] == ["passkey", "recovery", "totp"]
    challenge = password_first["mfa_token"]
    options = auth_post(client, "/2fa/passkey/options", mfa_token=challenge).get_json()["data"]["options"]
    done = auth_post(client, "/2fa/verify", mfa_token=challenge, passkey=device.get(options))
    assert done.status_code == 200 and amr(done) == ["hwk", "mfa", "pwd"]


@pytest.mark.parametrize("credential", [
    {}, {"id": "AAAA"}, {"id": "!!", "rawId": "!!", "response": {}, "type": "public-key"},
    {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
     "response": {"clientDataJSON": "e30", "attestationObject": "oWNm", "transports": "internal"}},
    {"id": 5, "rawId": [1], "response": "x", "type": 7},
])
def test_a_malformed_credential_is_a_400_never_a_500(client, user, credential):
    client.post(f"{PASSKEYS}/register/options", headers=bearer(user["access_token"]))
    registering = client.post(f"{PASSKEYS}/register/verify", json={"credential": credential},
                              headers=bearer(user["access_token"]))
    flow = sign_in_options(client)["flow_id"]
    signing_in = client.post(f"{PASSKEYS}/login/verify", json={"flow_id": flow, "credential": credential})
    for answer in (registering, signing_in):
        assert answer.status_code == 400 and answer.get_json()["code"] == codes.PASSKEY_INVALID.code, answer.get_json()


def test_an_operator_lists_a_users_passkeys(app, client, user):
    added(client, user["access_token"], name="Work laptop")
    printed = app.test_cli_runner().invoke(args=["users", "passkeys", "alice@example.com"])
    assert printed.exit_code == 0 and "Work laptop  synced=no" in printed.output


def test_leaving_takes_the_passkeys_along(client, user):
    device, _ = added(client, user["access_token"])
    assert client.delete(f"{AUTH}/me", json={"password": PASSWORD}, headers=bearer(user["access_token"])).status_code \
        == 200
    assert sign_in(client, device).get_json()["code"] == codes.PASSKEY_INVALID.code
