"""Operator commands an admin runs with flask --app app users ..."""

import pytest

from tests.helpers import AUTH, bearer


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def lock_out(client, email):
    for _ in range(5):
        client.post(f"{AUTH}/login", json={"email": email, "password": "wrong password"})
    assert client.post(f"{AUTH}/login", json={"email": email, "password": "x" * 8}).status_code == 423


def test_unlock_lets_a_locked_user_in_again(client, runner, user):
    lock_out(client, user["email"])
    result = runner.invoke(args=["users", "unlock", user["email"]])
    assert result.exit_code == 0 and "Unlocked" in result.output
    assert client.post(f"{AUTH}/login", json={"email": user["email"], "password": user["password"]}).status_code == 200


def test_revoke_logs_the_user_out_everywhere(client, runner, user):
    other = client.post(f"{AUTH}/login", json={"email": user["email"], "password": user["password"]})
    tokens = [user["access_token"], other.get_json()["data"]["access_token"]]
    result = runner.invoke(args=["users", "revoke", user["email"].upper()])
    assert result.exit_code == 0
    for token in tokens:
        assert client.get(f"{AUTH}/me", headers=bearer(token)).status_code == 401
    assert client.post(f"{AUTH}/refresh", json={"refresh_token": user["refresh_token"]}).status_code == 401


def test_show_prints_the_account_and_its_live_sessions(client, runner, user):
    client.post(f"{AUTH}/login", json={"email": user["email"], "password": user["password"]})
    result = runner.invoke(args=["users", "show", user["email"]])
    assert result.exit_code == 0
    assert f"email: {user['email']}" in result.output
    assert "live_sessions: 2" in result.output
    assert "password" not in result.output


@pytest.mark.parametrize("action", ["show", "sessions", "unlock", "revoke", "delete"])
def test_an_unknown_email_is_said_plainly_and_exits_non_zero(runner, action):
    result = runner.invoke(args=["users", action, "ghost@example.com"])
    assert result.exit_code != 0
    assert "no user with email ghost@example.com" in result.output


def test_delete_removes_the_account_and_its_tokens_stop_working(client, runner, user):
    result = runner.invoke(args=["users", "delete", user["email"], "--yes"])
    assert result.exit_code == 0 and "Deleted" in result.output
    response = client.get(f"{AUTH}/me", headers=bearer(user["access_token"]))
    assert response.status_code == 401
    assert client.post(f"{AUTH}/refresh", json={"refresh_token": user["refresh_token"]}).status_code == 401
    assert runner.invoke(args=["users", "show", user["email"]]).exit_code != 0


def test_an_account_with_orders_is_kept_but_logged_out(client, runner, user, auth_headers):
    product = client.get("/api/client/order/products").get_json()["data"]["items"][0]["id"]
    created = client.post("/api/client/order/create", json={"product_id": product}, headers=auth_headers)
    assert created.status_code == 201
    result = runner.invoke(args=["users", "delete", user["email"], "--yes"])
    assert result.exit_code != 0 and "has orders on record" in result.output
    assert client.get(f"{AUTH}/me", headers=auth_headers).status_code == 401
    assert runner.invoke(args=["users", "show", user["email"]]).exit_code == 0


def test_sessions_prints_each_live_session_with_its_device(client, runner, user):
    client.post(f"{AUTH}/login", json={"email": user["email"], "password": user["password"], "device_id": "tablet"})
    result = runner.invoke(args=["users", "sessions", user["email"]])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "device=tablet" in lines[0] and "device=-" in lines[1]
    assert all("ip=127.0.0.1" in line for line in lines)
