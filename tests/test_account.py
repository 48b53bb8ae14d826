"""A signed-in user looks after their own account: profile, password, sessions by device."""

from __future__ import annotations

import codes
from tests.conftest import PASSWORD, bearer, register

AUTH = "/api/client/auth"
NEW_PASSWORD = "a new passphrase"


def login(client, device_id=None, password=PASSWORD, email="alice@example.com"):
    body = {"email": email, "password": password, **({"device_id": device_id} if device_id else {})}
    return client.post(f"{AUTH}/login", json=body)


def me(client, token):
    return client.get(f"{AUTH}/me", headers=bearer(token))


def refresh(client, token):
    return client.post(f"{AUTH}/refresh", json={"refresh_token": token})


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


def test_a_password_change_ends_every_other_session_and_keeps_this_one(client, user):
    phone = login(client, "phone").get_json()["data"]
    answer = client.post(f"{AUTH}/password", headers=bearer(user["access_token"]),
                         json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    assert me(client, phone["access_token"]).status_code == 401
    assert refresh(client, phone["refresh_token"]).status_code == 401
    assert me(client, user["access_token"]).status_code == 200
    assert refresh(client, user["refresh_token"]).status_code == 200
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_a_wrong_current_password_changes_nothing_and_counts_toward_the_lockout(client, user):
    wrong = {"current_password": "not it", "new_password": NEW_PASSWORD}
    answers = [client.post(f"{AUTH}/password", headers=bearer(user["access_token"]), json=wrong)
               for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 5 + [423]
    assert answers[0].get_json()["code"] == codes.AUTH_INVALID_CREDENTIALS.code
    assert login(client).status_code == 423  # the same lock as five wrong logins
    assert me(client, user["access_token"]).status_code == 200


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
