"""One sign-in policy for every way in: what each way proves, what that unlocks, and the step-up
that sensitive changes ask for; and the audit's findings against it, each told as the attack."""

import time

import pytest
from sqlalchemy import event

import codes
from extensions import db, redis_store
from models import UserModel
from tests.helpers import (
    AUTH,
    PASSWORD,
    TEST_PREFIX,
    bearer,
    claims_of,
    code_in,
    created,
    login,
    me,
    proven,
    register,
    send_code,
    totp_code,
    verify,
)
from tests.helpers import (
    auth_post as post,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def user(proven_user):
    """Two-factor is only for a proven address (409 10028 otherwise)."""
    return proven_user


def with_two_factor(client, token):
    """Two-factor on for the token's user; the secret."""
    secret = post(client, "/2fa/setup", token).get_json()["data"]["secret"]
    assert post(client, "/2fa/enable", token, code=totp_code(secret)).status_code == 200
    return secret


def second_step(client, answer, secret, steps=1):
    """Complete a 202 challenge with a code of the next step (the current one may be spent)."""
    assert answer.status_code == 202, answer.get_json()
    data = answer.get_json()["data"]
    assert "access_token" not in data and data["needs"] == ["recovery", "totp"]
    return post(client, "/2fa/verify", mfa_token=data["mfa_token"], code=totp_code(secret, steps))


def signed_in_with_both(client, secret, email="alice@example.com", password=PASSWORD, steps=1):
    done = second_step(client, login(client, email, password), secret, steps)
    assert done.status_code == 200, done.get_json()
    return done.get_json()["data"]


# --- what each way proves ------------------------------------------------------------------------

def test_tokens_say_what_the_sign_in_proved_and_a_refresh_keeps_it(client):
    user = register(client)
    access = claims_of(user["access_token"])
    assert access["amr"] == ["pwd"] and abs(access["auth_time"] - time.time()) < 5
    time.sleep(1.1)  # so that a refresh that set auth_time anew would show it
    refreshed = post(client, "/refresh", refresh_token=user["refresh_token"]).get_json()["data"]
    for token in (refreshed["access_token"], refreshed["refresh_token"]):
        assert (claims_of(token)["amr"], claims_of(token)["auth_time"]) == (["pwd"], access["auth_time"])


def test_two_factors_are_named_mfa(client, user):
    secret = with_two_factor(client, user["access_token"])
    both = signed_in_with_both(client, secret)
    assert claims_of(both["access_token"])["amr"] == ["mfa", "pwd", "totp"]


@pytest.mark.parametrize("way", ["password", "mailed code", "password reset"])
def test_with_two_factor_on_every_way_in_answers_the_challenge_and_tokens_only_after_the_second_factor(
        make_app, smtp, way):
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    alice = proven(client, smtp)
    secret = with_two_factor(client, alice["access_token"])
    if way == "password":
        answer = login(client)
    elif way == "mailed code":
        send_code(client, "alice@example.com")
        answer = verify(client, code_in(smtp.last_to("alice@example.com")), "alice@example.com")
    else:
        post(client, "/password/forgot", email="alice@example.com")
        answer = post(client, "/password/reset", email="alice@example.com",
                      code=code_in(smtp.last_to("alice@example.com")), new_password=NEW_PASSWORD)
    done = second_step(client, answer, secret)
    assert done.status_code == 200
    assert "mfa" in claims_of(done.get_json()["data"]["access_token"])["amr"]


# --- finding 1: a reset skipped two-factor, and then turned it off ------------------------------

def test_a_password_reset_keeps_two_factor_on_and_cannot_turn_it_off(make_app, smtp):
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    alice = proven(client, smtp)
    with_two_factor(client, alice["access_token"])
    post(client, "/password/forgot", email="alice@example.com")
    reset = post(client, "/password/reset", email="alice@example.com",
                 code=code_in(smtp.last_to("alice@example.com")), new_password=NEW_PASSWORD)
    assert reset.status_code == 202 and "access_token" not in reset.get_json()["data"]
    assert login(client, "alice@example.com", NEW_PASSWORD).status_code == 202  # the password did change
    assert me(client, alice["access_token"]).status_code == 401  # and every session ended


# --- step-up ----------------------------------------------------------------------------------------

SENSITIVE = [("post", "/2fa/setup", {}), ("post", "/2fa/enable", {"code": "123456"}),
             ("post", "/2fa/disable", {"password": PASSWORD}), ("delete", "/sessions", None),
             ("delete", "/sessions/another-devices-session", None),
             ("delete", "/me", {"password": PASSWORD})]


def ask(client, token, method, path, body):
    return getattr(client, method)(f"{AUTH}{path}", json=body, headers=bearer(token))


def assert_step_up_asked(answer, max_age):
    assert answer.status_code == 401 and answer.get_json()["code"] == codes.AUTH_REAUTH_REQUIRED.code
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="insufficient_user_authentication"') and f"max_age={max_age}" in challenge


def test_a_stale_sign_in_is_asked_to_sign_in_again_and_reauthenticating_keeps_the_session(make_app, smtp):
    client = make_app(auth__reauth_max_age=1).test_client()
    alice = proven(client, smtp)
    time.sleep(2.1)
    for method, path, body in SENSITIVE:
        assert_step_up_asked(ask(client, alice["access_token"], method, path, body), 1)
    again = post(client, "/reauthenticate", alice["access_token"], password=PASSWORD)
    assert again.status_code == 200
    fresh = again.get_json()["data"]
    assert claims_of(fresh["access_token"])["sid"] == claims_of(alice["access_token"])["sid"]
    assert post(client, "/2fa/setup", fresh["access_token"]).status_code == 200
    assert ask(client, fresh["access_token"], "delete", "/sessions", None).status_code == 200
    assert post(client, "/refresh", refresh_token=alice["refresh_token"]).status_code == 401  # replaced


def test_with_two_factor_on_a_step_up_needs_both_factors_and_reauthenticate_asks_for_the_second(client, user):
    secret = with_two_factor(client, user["access_token"])  # the reset's token proved the mailbox only
    assert_step_up_asked(post(client, "/2fa/disable", user["access_token"], password=PASSWORD), 600)
    without = post(client, "/reauthenticate", user["access_token"], password=PASSWORD)
    assert without.status_code == 422 and isinstance(without.get_json()["data"]["fields"]["totp_code"], list)
    again = post(client, "/reauthenticate", user["access_token"], password=PASSWORD, totp_code=totp_code(secret, 1))
    assert again.status_code == 200
    assert post(client, "/2fa/disable", again.get_json()["data"]["access_token"], password=PASSWORD).status_code == 200


def test_reauthenticate_takes_a_mailed_code_too(client, user, smtp):
    send_code(client, "alice@example.com")
    again = post(client, "/reauthenticate", user["access_token"], code=code_in(smtp.last_to("alice@example.com")))
    assert again.status_code == 200 and claims_of(again.get_json()["data"]["access_token"])["amr"] == ["otp"]


# --- finding 2: anyone could lock the owner out of every way in ----------------------------------

def test_an_anonymous_run_of_wrong_passwords_and_codes_leaves_the_owner_a_way_in(make_app, smtp):
    client = make_app(auth__email_code_resend_seconds=0).test_client()
    proven(client, smtp)
    for _ in range(5):
        login(client, "alice@example.com", "an attacker's guess")
    assert login(client).status_code == 423
    for _ in range(2):  # codes the attacker asked for, each burned by wrong guesses
        send_code(client, "alice@example.com")
        for guess in range(5):
            verify(client, f"{guess:06d}" if guess else "999999", "alice@example.com")
    send_code(client, "alice@example.com")  # the owner's own, fresh
    assert verify(client, code_in(smtp.last_to("alice@example.com")), "alice@example.com").status_code == 200
    assert login(client).status_code == 200  # and the password lockout is lifted


def test_wrong_passwords_do_not_lock_the_second_step_and_wrong_second_factors_do(make_app, smtp):
    client = make_app(auth__rate_limits__login_per_email="100/minute").test_client()
    alice = proven(client, smtp)
    secret = with_two_factor(client, alice["access_token"])
    for _ in range(4):
        login(client, "alice@example.com", "an attacker's guess")
    signed_in_with_both(client, secret)  # four wrong passwords of someone else's stop nothing
    replayed = [second_step(client, login(client), secret, 1).get_json()["code"] for _ in range(5)]
    assert replayed == [codes.AUTH_TWO_FACTOR_CODE_INVALID.code] * 5
    assert second_step(client, login(client), secret, -1).status_code == 423  # an unused code, refused unread


# --- findings 4 and 14: a copied token, an old challenge ------------------------------------------

def test_enabling_two_factor_ends_every_other_session(client, user):
    other = login(client).get_json()["data"]
    with_two_factor(client, user["access_token"])
    assert me(client, other["access_token"]).status_code == 401
    assert me(client, user["access_token"]).status_code == 200


def test_a_challenge_issued_before_a_password_change_no_longer_completes(client, user):
    secret = with_two_factor(client, user["access_token"])
    stale = login(client).get_json()["data"]["mfa_token"]
    both = signed_in_with_both(client, secret)
    changed = post(client, "/password", both["access_token"], current_password=PASSWORD, new_password=NEW_PASSWORD)
    assert changed.status_code == 202  # the new session asks for the second factor as any sign-in does
    late = post(client, "/2fa/verify", mfa_token=stale, code=totp_code(secret, -1))
    assert late.status_code == 401 and late.get_json()["code"] == codes.AUTH_TOKEN_REVOKED.code


# --- finding 5: a squatter's two-factor ----------------------------------------------------------

def test_two_factor_waits_for_a_proven_address_so_a_squatter_sets_none_and_a_mailbox_clears_none(client, smtp):
    """Before: a squatter's authenticator outlived the owner's first code login; and the owner's
    own, set before the address was proven, fell to anyone who read the mailbox. Now the first
    proof clears what was set before it, and nothing can be set before it."""
    squatter = register(client)
    refused = post(client, "/2fa/setup", squatter["access_token"])
    assert refused.status_code == 409 and refused.get_json()["code"] == codes.AUTH_EMAIL_UNPROVEN.code
    assert post(client, "/2fa/enable", squatter["access_token"], code="123456").get_json()["code"] == 10028
    send_code(client, "alice@example.com")
    owner = verify(client, code_in(smtp.last_to("alice@example.com")), "alice@example.com")
    assert owner.status_code == 200 and me(client, squatter["access_token"]).status_code == 401
    assert post(client, "/2fa/setup", owner.get_json()["data"]["access_token"]).status_code == 200


# --- finding 6: codes that are not ASCII ---------------------------------------------------------

ODD_CODES = ["é23456", "１２３４５６", "٣٣٣٣٣٣", "\u00001234\u0000", "12345\U0001f600"]


def test_no_code_field_answers_a_5xx_for_a_code_that_is_not_ascii(client, user, smtp):
    secret = with_two_factor(client, user["access_token"])
    both = signed_in_with_both(client, secret)["access_token"]
    mfa = login(client).get_json()["data"]["mfa_token"]
    for odd in ODD_CODES:
        answers = [
            post(client, "/email-verify-login", email="alice@example.com", code=odd),
            post(client, "/register/confirm", email="alice@example.com", code=odd, password=PASSWORD),
            post(client, "/password/reset", email="alice@example.com", code=odd, new_password=NEW_PASSWORD),
            post(client, "/2fa/enable", both, code=odd),
            post(client, "/2fa/disable", both, code=odd),
            post(client, "/2fa/verify", mfa_token=mfa, code=odd),
            post(client, "/2fa/verify", mfa_token=mfa, recovery_code=odd),
            post(client, "/reauthenticate", both, password=PASSWORD, totp_code=odd),
            post(client, "/reauthenticate", both, password=PASSWORD, recovery_code=odd),
            post(client, "/reauthenticate", both, code=odd),
            client.delete(f"{AUTH}/me", json={"code": odd}, headers=bearer(both)),
        ]
        for answer in answers:
            assert 400 <= answer.status_code < 500, (odd, answer.request.path, answer.get_json())
            assert answer.get_json()["code"] != codes.INTERNAL_ERROR.code


# --- finding 7: a flood the per-IP limit refuses costs nothing ------------------------------------

def test_logins_the_address_limit_refuses_write_no_key_and_run_no_query(make_app):
    app = make_app(auth__rate_limits__login_per_ip="2/minute")
    client = app.test_client()
    for i in range(2):
        login(client, f"first{i}@example.com")
    statements = []
    with app.app_context():
        keys_before = len(list(redis_store.client.scan_iter(match=TEST_PREFIX + "*", count=1000)))
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            refused = [login(client, f"fresh{i}@example.com").status_code for i in range(30)]
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
        keys_after = len(list(redis_store.client.scan_iter(match=TEST_PREFIX + "*", count=1000)))
    assert refused == [429] * 30
    assert (keys_after, statements) == (keys_before, [])


# --- finding 8: registration mails count against the send-code limits -----------------------------

def test_registrations_that_mail_a_code_count_against_the_send_code_limit(make_app):
    client = make_app(auth__require_email_confirmation=True, auth__rate_limits__send_code_per_ip="3/hour").test_client()
    statuses = [client.post(f"{AUTH}/register", json={"email": f"new{i}@example.com", "password": PASSWORD}).status_code
                for i in range(3)]
    assert statuses == [202, 202, 202]
    assert send_code(client, "other@example.com").status_code == 429


# --- finding 9: what a squatter reads of the owner -------------------------------------------------

def test_a_squatter_reads_no_address_or_user_agent_of_the_owners_attempts(client):
    squatter = register(client)
    client.post(f"{AUTH}/login", json={"email": "alice@example.com", "password": "the owner tries",
                                       "device_id": "owners-phone"}, headers={"User-Agent": "OwnersPhone/1.0"})
    client.post(f"{AUTH}/send-email-code", json={"email": "alice@example.com"}, headers={"User-Agent": "OwnersPhone"})
    items = client.get(f"{AUTH}/activity", headers=bearer(squatter["access_token"])).get_json()["data"]["items"]
    theirs = [item for item in items if item["event"] in ("login_wrong_password", "code_sent")]
    assert len(theirs) == 2
    assert all((item["ip"], item["user_agent"], item["device_id"]) == (None, None, None) for item in theirs)


# --- finding 10: what a deleted account leaves -------------------------------------------------------

def test_deleting_the_account_clears_its_two_factor_and_every_key_of_its_own(app, client, user):
    secret = with_two_factor(client, user["access_token"])
    both = signed_in_with_both(client, secret)["access_token"]
    created(client, bearer(both))
    client.get("/api/client/order/list", headers=bearer(both))
    assert client.delete(f"{AUTH}/me", json={"password": PASSWORD}, headers=bearer(both)).status_code == 200
    with app.app_context():
        row = db.session.get(UserModel, user["id"])
        assert (row.totp_secret, row.totp_enabled_at, row.recovery_codes) == (None, None, None)
        left = list(redis_store.client.scan_iter(match=f"{TEST_PREFIX}*{{{user['id']}}}*", count=1000))
    assert left == []


# --- finding 11: locked means refused before any check -------------------------------------------

def test_while_the_second_step_is_locked_disable_checks_no_code(client, user):
    secret = with_two_factor(client, user["access_token"])
    both = signed_in_with_both(client, secret)["access_token"]
    for _ in range(5):
        second_step(client, login(client), secret, 0)
    answer = post(client, "/2fa/disable", both, code=totp_code(secret, -1))  # unused, in its window
    assert answer.status_code == 423


# --- finding 12: one per-IP budget for every check of a password or a code ------------------------

def test_routes_that_check_a_password_or_a_code_share_one_budget_per_address(make_app):
    client = make_app(auth__rate_limits__login_per_ip="3/minute").test_client()
    assert login(client).status_code == 401
    assert verify(client, "123456", "bob@example.com").status_code == 400
    assert post(client, "/2fa/verify", mfa_token="x.y.z", code="123456").status_code == 401
    assert post(client, "/password/reset", email="bob@example.com", code="123456",
                new_password=NEW_PASSWORD).status_code == 429


# --- finding 13: a flood of refused sign-ins is one row -----------------------------------------

def test_repeated_wrong_passwords_fold_into_one_row_and_activity_filters_by_kind(client, smtp):
    alice = proven(client, smtp)
    for _ in range(3):
        login(client, "alice@example.com", "wrong password")
    page = client.get(f"{AUTH}/activity", query_string={"event": "login_wrong_password"},
                      headers=bearer(alice["access_token"])).get_json()["data"]
    assert page["total"] == 1 and page["items"][0]["count"] == 3
    assert page["items"][0]["last_at"] >= page["items"][0]["created_at"]
