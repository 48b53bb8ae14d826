"""What the flask CLI does to accounts: look one up, lift a lockout, revoke its sessions, delete it."""

from __future__ import annotations

from extensions import db
from models import UserModel
from services.base import commit
from services.signin import accounts, passwords
from store import login_failures, sessions


def unlock(email: str) -> UserModel | None:
    """Lift a lockout: of the password, and of the user's second step."""
    user = accounts.find_user(email)
    if user is not None:
        passwords.clear_lockout(email)
        login_failures.clear_second_factor(user.id)
    return user


def delete_account(email: str) -> UserModel | None:
    """Remove an account; its tokens stop working at once.

    An account with orders is kept (they are financial records): the foreign key
    refuses the delete and IntegrityError reaches the caller, after every session
    was revoked.
    """
    user = accounts.find_user(email)
    if user is not None:
        sessions.forget_user(user.id)
        db.session.delete(user)
        commit()
        sessions.forget_user(user.id)  # and whatever a login racing with the delete stored
    return user


def revoke_everywhere(email: str) -> UserModel | None:
    """Log a user out of every session."""
    user = accounts.find_user(email)
    if user is not None:
        sessions.revoke_all(user.id)
    return user
