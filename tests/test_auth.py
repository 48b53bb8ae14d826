"""Accounts and sessions, told through the HTTP API."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

import codes
from extensions import db, redis_store
from models import UserModel
from store import sessions
from tests.helpers import AUTH, PASSWORD, TEST_PREFIX, bearer, login, me, refresh, register

USER_FIELDS = {"id", "email", "nickname", "login_count", "last_login_at", "created_at"}


def stored_user(app, email="alice@example.com"):
    with app.app_context():
        return db.session.scalar(select(UserModel).where(UserModel.email == email))


def test_register_login_me_refresh_me(client):
    registered = client.post(f"{AUTH}/register", json={
        "email": "  Alice@Example.COM ", "password": PASSWORD, "nickname": "Alice"})
    assert registered.status_code == 201
    data = registered.get_json()["data"]
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 86400 and data["refresh_expires_in"] == 604800
    assert set(data["user"]) == USER_FIELDS
    assert data["user"]["email"] == "alice@example.com" and data["user"]["nickname"] == "Alice"

    logged_in = login(client, "ALICE@example.com", device_id="phone-1")
    assert logged_in.status_code == 200
    pair = logged_in.get_json()["data"]
    assert pair["user"]["login_count"] == 2

    profile = me(client, pair["access_token"])
    assert profile.status_code == 200
    assert profile.get_json()["data"] == pair["user"]

    rotated = refresh(client, pair["refresh_token"])
    assert rotated.status_code == 200
    new_pair = rotated.get_json()["data"]
    assert new_pair["access_token"] != pair["access_token"]
    assert new_pair["refresh_token"] != pair["refresh_token"]
    assert me(client, new_pair["access_token"]).get_json()["data"]["email"] == "alice@example.com"
    # the access token from before the refresh keeps working until logout
    assert me(client, pair["access_token"]).status_code == 200


def test_token_responses_are_not_cacheable(client):
    response = client.post(f"{AUTH}/register", json={"email": "c@example.com", "password": PASSWORD})
    assert response.headers["Cache-Control"] == "no-store"


def test_no_response_carries_the_password_hash_or_lock_fields(client):
    registered = client.post(f"{AUTH}/register", json={"email": "alice@example.com", "password": PASSWORD})
    tokens = registered.get_json()["data"]
    bodies = [
        registered.get_data(as_text=True),
        login(client).get_data(as_text=True),
        me(client, tokens["access_token"]).get_data(as_text=True),
        refresh(client, tokens["refresh_token"]).get_data(as_text=True),
    ]
    for body in bodies:
        for secret_field in ("password_hash", "argon2", "failed_login_attempts", "locked_until", PASSWORD):
            assert secret_field not in body


def test_passwords_are_stored_as_argon2id(app, user):
    assert stored_user(app).password_hash.startswith("$argon2id$")


def test_passwords_are_hashed_at_the_configured_cost_which_defaults_to_argon2s_own(make_app):
    shipped = make_app(auth__password_hashing__time_cost=3, auth__password_hashing__memory_cost=65536,
                       auth__password_hashing__parallelism=4)
    register(shipped.test_client(), "cost@example.com")
    with shipped.app_context():
        stored = db.session.scalar(select(UserModel.password_hash).where(UserModel.email == "cost@example.com"))
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_register_rejects_bad_input_field_by_field(client):
    response = client.post(f"{AUTH}/register", json={"email": "not-an-email", "password": "short",
                                                     "nickname": "x" * 65})
    assert response.status_code == 422
    fields = response.get_json()["data"]["fields"]
    assert fields == {"email": ["Not a valid email address."],
                      "password": ["Length must be between 8 and 128."],
                      "nickname": ["Longer than maximum length 64."]}


def test_register_twice_with_one_email_is_a_conflict(client, user):
    response = client.post(f"{AUTH}/register", json={"email": "ALICE@example.com", "password": PASSWORD})
    assert response.status_code == 409
    assert response.get_json()["code"] == codes.USER_EMAIL_TAKEN.code


def test_wrong_password_and_unknown_email_get_the_same_answer(client, user):
    wrong = login(client, password="wrong password")
    unknown = login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["code"] == codes.AUTH_INVALID_CREDENTIALS.code == 10006


def test_logout_ends_that_session_only(client, user):
    other = login(client, device_id="laptop").get_json()["data"]
    assert client.post(f"{AUTH}/logout", headers=bearer(user["access_token"])).status_code == 200

    gone = me(client, user["access_token"])
    assert gone.status_code == 401 and gone.get_json()["code"] == codes.AUTH_TOKEN_REVOKED.code
    assert refresh(client, user["refresh_token"]).status_code == 401
    assert me(client, other["access_token"]).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_logout_also_ends_access_tokens_issued_by_refresh_in_that_session(client, user):
    newer = refresh(client, user["refresh_token"]).get_json()["data"]
    client.post(f"{AUTH}/logout", headers=bearer(newer["access_token"]))
    assert me(client, newer["access_token"]).status_code == 401
    assert me(client, user["access_token"]).status_code == 401


def test_logout_all_ends_every_session(client, user):
    other = login(client).get_json()["data"]
    response = client.post(f"{AUTH}/logout", json={"all": True}, headers=bearer(user["access_token"]))
    assert response.status_code == 200 and response.get_json()["data"] is None
    for pair in (user, other):
        assert me(client, pair["access_token"]).status_code == 401
        assert refresh(client, pair["refresh_token"]).status_code == 401


def test_a_rotated_refresh_token_works_inside_the_grace_window(client, user):
    first = refresh(client, user["refresh_token"])
    second = refresh(client, user["refresh_token"])  # another tab racing with the same token
    assert first.status_code == second.status_code == 200
    assert me(client, second.get_json()["data"]["access_token"]).status_code == 200
    assert me(client, first.get_json()["data"]["access_token"]).status_code == 200
    # both tabs continue one chain: the racing tab gets the refresh token the first rotation made
    assert second.get_json()["data"]["refresh_token"] == first.get_json()["data"]["refresh_token"]


def test_a_thief_racing_inside_the_grace_window_is_caught_at_the_next_use(make_app):
    client = make_app(auth__refresh_grace_seconds=1).test_client()
    stolen = register(client, "stolen@example.com")["refresh_token"]
    owner = refresh(client, stolen).get_json()["data"]
    thief = refresh(client, stolen).get_json()["data"]  # inside the window: no chain of its own
    assert thief["refresh_token"] == owner["refresh_token"]
    owner_next = refresh(client, owner["refresh_token"]).get_json()["data"]
    time.sleep(2.1)
    caught = refresh(client, thief["refresh_token"])  # the shared token, used again after its window
    assert caught.status_code == 401
    assert me(client, owner_next["access_token"]).status_code == 401  # the whole family is revoked


def test_a_rotated_refresh_token_after_the_grace_window_revokes_every_session(make_app):
    client = make_app(auth__refresh_grace_seconds=1).test_client()
    victim = register(client, "victim@example.com")
    other_device = login(client, "victim@example.com").get_json()["data"]
    rotated = refresh(client, victim["refresh_token"]).get_json()["data"]
    time.sleep(2.1)

    reuse = refresh(client, victim["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.get_json()["code"] == codes.AUTH_TOKEN_REVOKED.code
    for token in (rotated["access_token"], other_device["access_token"], victim["access_token"]):
        assert me(client, token).status_code == 401
    assert refresh(client, rotated["refresh_token"]).status_code == 401
    assert refresh(client, other_device["refresh_token"]).status_code == 401
    # the account itself is fine: a new login works
    assert login(client, "victim@example.com").status_code == 200


def test_a_refresh_token_never_issued_is_refused(client, user, app):
    import jwt

    claims = jwt.decode(user["refresh_token"], options={"verify_signature": False})
    claims["jti"] = "another"
    forged_but_validly_signed = jwt.encode(claims, app.config["SETTINGS"].auth.jwt_secret, algorithm="HS256")
    response = refresh(client, forged_but_validly_signed)
    assert response.status_code == 401 and response.get_json()["code"] == codes.AUTH_TOKEN_REVOKED.code
    assert me(client, user["access_token"]).status_code == 200  # unknown token is not treated as theft


def test_sessions_beyond_the_cap_evict_the_oldest(make_app):
    client = make_app(auth__max_sessions_per_user=2).test_client()
    first = register(client, "cap@example.com")
    second = login(client, "cap@example.com").get_json()["data"]
    third = login(client, "cap@example.com").get_json()["data"]
    assert me(client, first["access_token"]).status_code == 401
    assert refresh(client, first["refresh_token"]).status_code == 401
    assert me(client, second["access_token"]).status_code == 200
    assert me(client, third["access_token"]).status_code == 200


def test_five_wrong_passwords_lock_the_account_and_the_lock_lifts(make_app):
    client = make_app(auth__lockout_minutes=0.04).test_client()  # 2.4 s
    register(client, "lock@example.com")
    for _ in range(5):
        assert login(client, "lock@example.com", "wrong password").status_code == 401
    locked = login(client, "lock@example.com")
    assert locked.status_code == 423
    body = locked.get_json()
    assert body["code"] == codes.AUTH_ACCOUNT_LOCKED.code
    assert 1 <= body["data"]["retry_after"] <= 3
    assert locked.headers["Retry-After"] == str(body["data"]["retry_after"])

    time.sleep(2.6)
    assert login(client, "lock@example.com").status_code == 200


def test_a_success_resets_the_failure_count(client, user):
    for _ in range(4):
        login(client, password="wrong password")
    assert login(client).status_code == 200
    for _ in range(4):
        assert login(client, password="wrong password").status_code == 401
    assert login(client).status_code == 200


def test_twenty_parallel_wrong_logins_count_exactly(make_app):
    # The per-email rate limit (10/minute) would answer half of these first; lift it to see the counter.
    app = make_app(auth__rate_limits__login_per_email="100/minute")
    register(app.test_client(), "alice@example.com")

    def attempt(_):
        with app.test_client() as c:
            return login(c, password="wrong password").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert sorted(statuses) == [401] * 5 + [423] * 15
    assert login(app.test_client()).status_code == 423  # even with the right password


def test_login_is_rate_limited_per_email_with_retry_after(make_app):
    client = make_app(auth__rate_limits__login_per_email="3/minute").test_client()
    register(client, "rl@example.com")
    statuses = [login(client, "rl@example.com", "wrong password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = login(client, "rl@example.com")
    assert limited.get_json()["code"] == codes.RATE_LIMITED.code
    assert 1 <= int(limited.headers["Retry-After"]) <= 61  # a one-minute window, rounded up
    # another email from the same client is not affected
    assert login(client, "other@example.com").status_code == 401


def test_the_default_limits_let_a_mistyping_user_meet_the_lockout_not_a_429(client, user):
    statuses = [login(client, password="wrong password").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [423]


def test_messages_follow_the_requests_language(client, user):
    response = client.post(f"{AUTH}/login?lang=zh-CN", json={"email": user["email"], "password": "nope nope"})
    assert response.get_json()["msg"] == "邮箱或密码错误。"


def test_a_hash_with_older_parameters_is_upgraded_on_the_next_login(app, client, user):
    from argon2 import PasswordHasher

    with app.app_context():
        stored = db.session.scalar(select(UserModel).where(UserModel.email == user["email"]))
        stored.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        db.session.commit()
    assert login(client).status_code == 200
    upgraded = stored_user(app).password_hash
    assert "m=8192" not in upgraded and upgraded.startswith("$argon2id$")
    assert login(client).status_code == 200


def test_an_ended_session_s_old_tokens_are_merely_unknown(client, user):
    other = login(client, device_id="tablet").get_json()["data"]
    newer = refresh(client, user["refresh_token"]).get_json()["data"]
    client.post(f"{AUTH}/logout", headers=bearer(newer["access_token"]))
    replay = refresh(client, user["refresh_token"])  # rotated once, in a session that has ended
    assert replay.status_code == 401
    assert me(client, other["access_token"]).status_code == 200  # no global logout for it


def test_the_session_cap_evicts_the_least_recently_used(make_app):
    client = make_app(auth__max_sessions_per_user=2).test_client()
    first = register(client, "lru@example.com")
    second = login(client, "lru@example.com").get_json()["data"]
    time.sleep(0.01)
    kept_alive = refresh(client, first["refresh_token"]).get_json()["data"]  # the first is in use
    third = login(client, "lru@example.com").get_json()["data"]
    assert me(client, second["access_token"]).status_code == 401
    assert me(client, kept_alive["access_token"]).status_code == 200
    assert me(client, third["access_token"]).status_code == 200


def test_a_session_keeps_its_16_newest_access_tokens(client, user, app):
    pair = {"refresh_token": user["refresh_token"], "access_token": user["access_token"]}
    handed_out = [pair["access_token"]]
    for _ in range(20):
        pair = refresh(client, pair["refresh_token"]).get_json()["data"]
        handed_out.append(pair["access_token"])
    with app.app_context():
        assert len(sessions.tracked(user["id"])["access_token"]) == 16
    assert [me(client, token).status_code for token in handed_out[-16:]] == [200] * 16
    assert me(client, handed_out[0]).status_code == 401


def test_refreshing_in_a_loop_keeps_the_session_record_small(client, user, app):
    """The record lists the live refresh token and the 16 newest access tokens, nothing rotated."""
    token = user["refresh_token"]
    for _ in range(30):
        token = refresh(client, token).get_json()["data"]["refresh_token"]
    with app.app_context():
        [record] = sessions.session_records(user["id"]).values()
    assert record["r"] == [sessions.fingerprint(token)]
    assert len(record["a"]) == 16 and record["g"] == 30


def test_a_token_rotated_long_ago_is_still_caught_as_theft(make_app):
    client = make_app(auth__refresh_grace_seconds=0).test_client()
    first = register(client, "chain@example.com")
    other_device = login(client, "chain@example.com").get_json()["data"]
    token = first["refresh_token"]
    for _ in range(30):
        token = refresh(client, token).get_json()["data"]["refresh_token"]
    assert refresh(client, first["refresh_token"]).status_code == 401  # rotated 30 refreshes ago: theft
    assert me(client, other_device["access_token"]).status_code == 401  # so every session ended
    assert refresh(client, token).status_code == 401


def test_refresh_is_rate_limited_per_ip(make_app):
    client = make_app(auth__rate_limits__refresh_per_ip="3/minute").test_client()
    token = register(client, "rr@example.com")["refresh_token"]
    statuses = []
    for _ in range(4):
        response = refresh(client, token)
        statuses.append(response.status_code)
        if response.status_code == 200:
            token = response.get_json()["data"]["refresh_token"]
    assert statuses == [200, 200, 200, 429]


def test_refreshes_refused_for_their_body_or_token_count_toward_the_limit_too(make_app):
    client = make_app(auth__rate_limits__refresh_per_ip="3/minute").test_client()
    token = register(client, "rl@example.com")["refresh_token"]
    unread = client.post(f"{AUTH}/refresh", data="{not json", content_type="application/json")
    missing = client.post(f"{AUTH}/refresh", json={})
    forged = refresh(client, "not-a-token")
    assert [unread.status_code, missing.status_code, forged.status_code] == [400, 422, 401]

    limited = refresh(client, token)
    assert limited.status_code == 429
    body = limited.get_json()
    assert body["code"] == codes.RATE_LIMITED.code and 1 <= body["data"]["retry_after"] <= 60
    assert limited.headers["Retry-After"] == str(body["data"]["retry_after"])
    assert client.post(f"{AUTH}/refresh", json={}).status_code == 429  # over it, a bad body is refused alike


def test_a_refresh_refused_by_the_limit_leaves_its_token_as_it_was(make_app):
    client = make_app(auth__rate_limits__refresh_per_ip="2 per 2 seconds").test_client()
    first = register(client, "rw@example.com")
    second = refresh(client, first["refresh_token"]).get_json()["data"]["refresh_token"]
    third = refresh(client, second).get_json()["data"]["refresh_token"]
    assert refresh(client, third).status_code == 429
    time.sleep(2.1)
    again = refresh(client, third)  # neither rotated nor taken for a replay while it was refused
    assert again.status_code == 200
    assert me(client, again.get_json()["data"]["access_token"]).status_code == 200


def test_an_email_without_an_account_locks_like_one_with_an_account(client, user):
    known = [login(client, password="wrong password") for _ in range(6)]
    unknown = [login(client, "nobody@example.com", "wrong password") for _ in range(6)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 5 + [423]
    assert known[-1].get_json()["code"] == unknown[-1].get_json()["code"] == codes.AUTH_ACCOUNT_LOCKED.code


def test_parallel_wrong_logins_answer_alike_for_known_and_unknown_emails(make_app):
    app = make_app(auth__rate_limits__login_per_email="100/minute")
    register(app.test_client(), "known@example.com")

    def statuses(email):
        def attempt(_):
            with app.test_client() as c:
                return login(c, email, "wrong password").status_code
        with ThreadPoolExecutor(max_workers=8) as pool:
            return sorted(pool.map(attempt, range(8)))

    assert statuses("known@example.com") == statuses("unknown@example.com") == [401] * 5 + [423] * 3


def test_failures_spread_over_more_than_the_lockout_window_lock_neither_kind_of_email(make_app):
    client = make_app(auth__lockout_minutes=0.04).test_client()  # 2.4 s
    register(client, "known@example.com")
    answers = {}
    for email in ("known@example.com", "unknown@example.com"):
        early = [login(client, email, "wrong password").status_code for _ in range(4)]
        answers[email] = early
    time.sleep(2.6)
    for email in answers:
        answers[email] += [login(client, email, "wrong password").status_code for _ in range(2)]
    assert answers["known@example.com"] == answers["unknown@example.com"] == [401] * 6


def test_the_hash_an_unknown_email_is_checked_against_is_made_before_the_first_login(app):
    """Made at start, so the first unknown-email login costs what every later one does."""
    from argon2.exceptions import VerifyMismatchError

    hasher, dummy = app.extensions["password_hasher"]
    with pytest.raises(VerifyMismatchError):
        hasher.verify(dummy, PASSWORD)


def stored_for(app, user_id) -> dict[str, int]:
    """Every Redis key of the user and how many members or fields it holds (a string: 1)."""
    with app.app_context():
        client = redis_store.client
        size = {"zset": client.zcard, "hash": client.hlen, "string": lambda key: 1}
        return {key: size[client.type(key)](key)
                for key in client.scan_iter(match=f"{TEST_PREFIX}*{{{user_id}}}*", count=1000)}


def test_refreshing_in_a_loop_does_not_grow_what_redis_keeps_or_scans(client, user, app):
    token = user["refresh_token"]
    sizes = []
    for rounds in (20, 30):  # by 20 the session holds its 16 newest access tokens
        for _ in range(rounds):
            token = refresh(client, token).get_json()["data"]["refresh_token"]
        sizes.append(stored_for(app, user["id"]))
    assert sizes[0] == sizes[1]
    assert refresh(client, user["refresh_token"]).status_code == 401  # and a token from the start is still theft
    assert refresh(client, token).status_code == 401
