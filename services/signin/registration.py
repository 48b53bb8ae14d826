"""The ways an account begins: register with a password, or, with auth.require_email_confirmation,
register and confirm the mailed code."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext

import codes
from config import settings
from errors import ApiError
from services import audit
from services.signin import accounts, mailbox, passwords, policy
from store import email_codes


def confirmation_required() -> bool:
    return settings.auth.require_email_confirmation


def register(email: str, password: str, nickname: str | None, ip: str) -> dict[str, Any]:
    """Create an account and sign it in."""
    if accounts.find_user(email) is not None:
        raise ApiError(codes.USER_EMAIL_TAKEN)
    user = accounts.create_user(email, passwords.hash_password(password), nickname)
    audit.record("registered", user.id)
    return policy.grant(user, {"pwd"}, None, ip)


def begin(email: str, password: str, nickname: str | None) -> dict[str, int]:
    """With auth.require_email_confirmation: nothing is created yet. A new email gets a code that
    confirm() turns into the account; a taken one a mail saying so. Both answers, and their cost
    (an argon2 hash each), are the same."""
    password_hash = passwords.hash_password(password)
    mailbox.claim_resend_window(email, "register")
    code, minutes = mailbox.new_code()
    # A taken email gets a pending registration too, under a code nobody is sent, so that confirming
    # answers and costs alike whether the address has an account or not.
    email_codes.store(email, mailbox.code_hash(email, f"{code}:{password_hash}", "register"),
                      settings.auth.email_code_ttl, "register", {"password_hash": password_hash,
                                                                 "nickname": nickname or ""})
    if accounts.find_user(email) is not None:
        return mailbox.mail(email, gettext("You already have an account"),
                            gettext("Someone, perhaps you, tried to sign up with this address, which already has "
                                    "an account. Sign in with your password or with an emailed code, or reset "
                                    "your password. If it was not you, ignore this mail."), "register")
    return mailbox.mail(email, gettext("Confirm your email"),
                        gettext("Your confirmation code is %(code)s. It expires in %(minutes)s minutes.",
                                code=code, minutes=minutes), "register")


def confirm(email: str, code: str, password: str, device_id: str | None, ip: str) -> dict[str, Any]:
    """Create the account a registration asked for, once its mailed code and its password are
    presented. The password is asked again so that someone who registered the address after the
    owner cannot have the owner confirm an account with the other person's password."""
    pending = email_codes.pending_fields(email, "register")
    # verified first, pending or not: with none pending, the dummy hash costs the same
    if not passwords.verify_password(pending.get("password_hash"), password) and pending:
        raise ApiError(codes.AUTH_INVALID_CREDENTIALS)
    # The code's HMAC covers the password hash: a registration replaced in between fails here.
    mailbox.consume(email, f"{code}:{pending.get('password_hash', '')}", "register")
    user = accounts.create_user(email, pending["password_hash"], pending["nickname"] or None, verified=True)
    audit.record("email_confirmed", user.id, device_id)
    return policy.grant(user, {"pwd", "otp"}, device_id, ip)
