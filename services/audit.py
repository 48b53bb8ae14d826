"""The account's history: what happened to it, when, from where; for the user and for operators.

An event that comes with a change of the database (a login, a password change) is written in that
change's transaction (record); one that changes nothing there (a wrong password, a logout, which
live in Redis) is committed on its own (record_now), and a failure to write it is logged and never
fails the request. One event per request at most. No secret is ever stored: no password, no
code, no token; the detail is a small JSON object of ids.

An event that anyone can cause by naming the account's email (a wrong password, a mailed code:
record_refused) is written after the answer is sent, by a thread of its own, so that neither the
answer's time nor that of the next request on the connection tells a known email from an unknown
one (an unknown email's runs the same statements and writes nothing); repeats within FOLD_PERIOD
fold into one row with a count, so that a flood of them cannot push the rest out of the history;
and until the address is proven it keeps no client address or user agent, which would show the
owner's to whoever registered it.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from extensions import client_ip, db
from models import AccountEventModel, UserModel
from models.base import utcnow
from services.base import commit, paginate

log = logging.getLogger("flask_api.audit")

# Every event, with the words the user reads in their activity, in the request's language.
EVENTS = {
    "registered": _l("Account created"),
    "login": _l("Signed in with the password"),
    "login_totp": _l("Signed in with the password and the authenticator app"),
    "code_login_totp": _l("Signed in with an emailed code and the authenticator app"),
    "reauthenticated": _l("Signed in again to confirm a sensitive change"),
    "other_sessions_ended": _l("Every other session was ended"),
    "login_wrong_password": _l("Wrong password"),
    "login_locked": _l("Sign-in locked after too many wrong passwords"),
    "login_rate_limited": _l("Sign-ins refused: too many in a short time"),
    "code_sent": _l("Sign-in code sent by email"),
    "code_login": _l("Signed in with an emailed code"),
    "email_confirmed": _l("Email address confirmed"),
    "refresh_reuse": _l("A used sign-in token came back: every session was ended"),
    "logout": _l("Signed out"),
    "logout_all": _l("Signed out everywhere"),
    "session_ended": _l("A session was ended from another device"),
    "password_changed": _l("Password changed"),
    "password_reset": _l("Password reset by email"),
    "account_deleted": _l("Account deleted"),
    "two_factor_enabled": _l("Two-factor sign-in turned on"),
    "two_factor_disabled": _l("Two-factor sign-in turned off"),
    "recovery_code_used": _l("Signed in with a recovery code"),
    "passkey_login": _l("Signed in with a passkey"),
    "passkey_added": _l("Passkey added"),
    "passkey_renamed": _l("Passkey renamed"),
    "passkey_removed": _l("Passkey removed"),
    "passkey_counter_regression": _l("A passkey answered with a counter that went backwards: refused"),
}
USER_AGENT_LENGTH = 255
FOLDED = frozenset({"login_wrong_password", "login_locked", "login_rate_limited", "code_sent"})
FOLD_PERIOD = timedelta(hours=1)
NOBODY = 0  # the user id of an unknown email's refused event: no account has it, and nothing is written


def init_app(app: Flask) -> None:
    app.after_request(_write_after_response)


def record(event: str, user_id: int | None, device_id: str | None = None, **detail: Any) -> None:
    """Add the event to the request's transaction: it is stored if, and only if, the change is."""
    row = _row(event, user_id, device_id, detail)
    if row is not None:
        db.session.add(AccountEventModel(**row))


def record_now(event: str, user_id: int | None, device_id: str | None = None, **detail: Any) -> None:
    """Store the event at once, for a request that changes nothing in the database (its transaction
    has only read, and is committed with the event; on the request's own connection, so that a
    flood of failed logins does not take two connections each); a failure is logged, not answered."""
    row = _row(event, user_id, device_id, detail)
    if row is None:
        return
    try:
        db.session.execute(insert(AccountEventModel).values(**row))
        commit()
    except SQLAlchemyError as error:
        log.warning("account event not stored", extra={"fields": {
            "event": event, "user_id": user_id, "error": error.__class__.__name__}})


def record_refused(event: str, user: UserModel | None, device_id: str | None = None, **detail: Any) -> None:
    """Keep an event that someone who named the account's email caused, to be written once the
    answer is sent (folded with its repeats). An unknown email's goes the same way and is written
    to no one's history: the same statements run, so that the writer's work does not tell either."""
    row = _row(event, user.id if user else NOBODY, device_id, detail)
    if row is None:
        return
    if user is None or user.email_verified_at is None:  # perhaps not the owner's account: keep the owner's traces out
        row.update(ip=None, user_agent=None, device_id=None)
    g.events_after_response = [*g.get("events_after_response", []), row]


def _write_after_response(response: Response) -> Response:
    rows = g.pop("events_after_response", None)
    if rows:
        write = partial(_write_folded, current_app._get_current_object(), rows)
        response.call_on_close(lambda: _writer().submit(write))
    return response


_writer_lock = threading.Lock()
_writer_pool: ThreadPoolExecutor | None = None


def _writer() -> ThreadPoolExecutor:
    """One writer thread per process, made at its first use (in a gunicorn worker, not the master)."""
    global _writer_pool
    with _writer_lock:
        if _writer_pool is None:
            _writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="account-events")
        return _writer_pool


def wait_for_writes() -> None:
    """Return once every event handed to the writer so far is written (for tests and commands)."""
    _writer().submit(lambda: None).result()


def _write_folded(app: Flask, rows: list[dict[str, Any]]) -> None:
    """Add each row, or count it in the latest row of the same event within FOLD_PERIOD."""
    with app.app_context():
        try:
            for row in rows:
                since = row["created_at"] - FOLD_PERIOD
                latest = db.session.scalar(
                    select(AccountEventModel.id).where(AccountEventModel.user_id == row["user_id"],
                                                       AccountEventModel.event == row["event"],
                                                       AccountEventModel.created_at >= since)
                    .order_by(AccountEventModel.id.desc()).limit(1))
                if row["user_id"] == NOBODY:
                    latest = 0  # the UPDATE below, of no row
                if latest is None:
                    db.session.execute(insert(AccountEventModel).values(**row))
                else:
                    db.session.execute(update(AccountEventModel).where(AccountEventModel.id == latest).values(
                        count=AccountEventModel.count + 1, last_at=row["created_at"]))
            commit()
        except SQLAlchemyError as error:
            log.warning("account event not stored", extra={"fields": {
                "event": rows[0]["event"], "user_id": rows[0]["user_id"], "error": error.__class__.__name__}})


def _row(event: str, user_id: int | None, device_id: str | None, detail: dict[str, Any]) -> dict[str, Any] | None:
    if event not in EVENTS:
        raise ValueError(f"unknown account event {event}")
    if user_id is None:  # an unknown email: the lockout counts it, and nobody's history shows it
        return None
    row: dict[str, Any] = {"user_id": user_id, "event": event, "device_id": device_id, "created_at": utcnow(),
                           "detail": json.dumps(detail, sort_keys=True) if detail else None}
    if has_request_context():
        if g.get("account_event_recorded"):
            return None  # one per request: the first says what the request did
        g.account_event_recorded = True
        agent = request.headers.get("User-Agent", "")[:USER_AGENT_LENGTH]
        row.update(ip=client_ip(), user_agent=agent or None, request_id=g.get("request_id"))
    return row


def recent(user_id: int, page: int, page_size: int, event: str | None = None) -> dict[str, Any]:
    """A page of the user's events (of one kind, if given), newest first, each with its words in
    the request's language."""
    query = select(AccountEventModel).where(AccountEventModel.user_id == user_id)
    if event is not None:
        query = query.where(AccountEventModel.event == event)
    result = paginate(query, page, page_size, AccountEventModel.id.desc())
    result["items"] = [shown(row) for row in result["items"]]
    return result


def shown(row: AccountEventModel) -> dict[str, Any]:
    return {"event": row.event, "description": str(EVENTS.get(row.event, row.event)), "ip": row.ip,
            "device_id": row.device_id, "user_agent": row.user_agent, "created_at": row.created_at,
            "count": row.count or 1, "last_at": row.last_at or row.created_at,
            "detail": json.loads(row.detail) if row.detail else {}}


def prune(older_than: timedelta) -> int:
    """Delete the events older than that; for cron. Returns how many."""
    cutoff: datetime = utcnow() - older_than
    deleted = db.session.execute(delete(AccountEventModel).where(AccountEventModel.created_at < cutoff)).rowcount
    commit()
    return deleted
