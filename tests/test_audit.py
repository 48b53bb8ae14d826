"""An account's history: the user reads what happened to their account, and operators too."""

import json
from datetime import timedelta

from sqlalchemy import func, select

from extensions import db
from models import AccountEventModel
from models.base import utcnow
from tests.helpers import AUTH, PASSWORD, bearer, code_in, login, me, register, send_code, verify


def activity(client, token, **query):
    return client.get(f"{AUTH}/activity", headers=bearer(token), query_string=query)


def events(client, token):
    return [item["event"] for item in activity(client, token).get_json()["data"]["items"]]


def test_the_user_reads_their_sign_ins_and_failures_newest_first_in_their_language(client):
    first = register(client, "eve@example.com")
    assert login(client, "eve@example.com", "not the password").status_code == 401
    second = login(client, "eve@example.com", PASSWORD, device_id="phone-1").get_json()["data"]
    assert events(client, second["access_token"]) == ["login", "login_wrong_password", "registered"]
    page = activity(client, second["access_token"], page_size=1).get_json()["data"]
    assert (page["total"], page["page_size"], len(page["items"])) == (3, 1, 1)
    newest = page["items"][0]
    assert (newest["device_id"], newest["ip"], newest["description"]) == ("phone-1", "127.0.0.1",
                                                                          "Signed in with the password")
    chinese = client.get(f"{AUTH}/activity", headers={**bearer(first["access_token"]), "Accept-Language": "zh-CN"})
    assert chinese.get_json()["data"]["items"][0]["description"] == "使用密码登录"


def test_no_secret_is_ever_stored_in_the_history(app, client, smtp):
    register(client, "frank@example.com")
    send_code(client, "frank@example.com")
    code = code_in(smtp.last_to("frank@example.com"))
    assert verify(client, code, "frank@example.com").status_code == 200
    login(client, "frank@example.com", "a wrong password")
    with app.app_context():
        stored = " ".join(json.dumps([row.event, row.detail, row.user_agent]) for row in
                          db.session.scalars(select(AccountEventModel)))
    assert PASSWORD not in stored and code not in stored and "a wrong password" not in stored
    assert "code_sent" in stored and "code_login" in stored


def test_a_wrong_password_for_an_unknown_email_is_in_nobodys_history(app, client):
    assert login(client, "nobody@example.com", "whatever it is").status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AccountEventModel)) == 0


def test_one_request_writes_one_event_at_most(app, client):
    pair = register(client, "gina@example.com")
    client.post(f"{AUTH}/logout", json={"all": True}, headers=bearer(pair["access_token"]))
    with app.app_context():
        kinds = db.session.scalars(select(AccountEventModel.event).order_by(AccountEventModel.id)).all()
    assert kinds == ["registered", "logout_all"]


def test_a_password_change_and_an_ended_session_are_in_the_history(client):
    pair = register(client, "hana@example.com")
    other = login(client, "hana@example.com", PASSWORD, device_id="laptop").get_json()["data"]
    sessions = client.get(f"{AUTH}/sessions", headers=bearer(pair["access_token"])).get_json()["data"]["items"]
    laptop = next(session["id"] for session in sessions if session["device_id"] == "laptop")
    assert client.delete(f"{AUTH}/sessions/{laptop}", headers=bearer(pair["access_token"])).status_code == 200
    changed = client.post(f"{AUTH}/password", json={"current_password": PASSWORD, "new_password": "another long one"},
                          headers=bearer(pair["access_token"])).get_json()["data"]
    assert events(client, changed["access_token"])[:3] == ["password_changed", "session_ended", "login"]
    assert me(client, other["access_token"]).status_code == 401  # the laptop's session, ended above


def test_operators_read_an_accounts_history_and_prune_old_events(app, client):
    register(client, "ivy@example.com")
    login(client, "ivy@example.com", "not it at all")
    cli = app.test_cli_runner()
    shown = cli.invoke(args=["users", "activity", " IVY@example.com "])
    assert shown.exit_code == 0
    assert [line.split()[1] for line in shown.output.splitlines()] == ["login_wrong_password", "registered"]
    with app.app_context():
        db.session.execute(AccountEventModel.__table__.update().where(AccountEventModel.event == "registered")
                           .values(created_at=utcnow() - timedelta(days=200)))
        db.session.commit()
    assert cli.invoke(args=["audit", "prune", "--older-than", "180d"]).output.strip() == "Deleted 1 account event(s)."
    assert cli.invoke(args=["users", "activity", "ivy@example.com"]).output.split()[1] == "login_wrong_password"


def test_each_event_carries_its_request_id_and_only_the_caller_sees_their_own(app, client):
    mine = register(client, "jane@example.com")
    theirs = register(client, "kate@example.com")
    wrong = login(client, "jane@example.com", "not jane's password")
    with app.app_context():
        stored = db.session.scalar(select(AccountEventModel.request_id)
                                   .where(AccountEventModel.event == "login_wrong_password"))
    assert stored == wrong.headers["X-Request-ID"]
    assert events(client, mine["access_token"]) == ["login_wrong_password", "registered"]
    assert events(client, theirs["access_token"]) == ["registered"]


def test_rate_limited_logins_are_in_the_history_once_a_minute_at_most(make_app):
    client = make_app(auth__rate_limits__login_per_email="2/minute").test_client()
    pair = register(client, "lena@example.com")
    answers = [login(client, "lena@example.com", PASSWORD).status_code for _ in range(5)]
    assert answers == [200, 200, 429, 429, 429]
    assert events(client, pair["access_token"]).count("login_rate_limited") == 1
