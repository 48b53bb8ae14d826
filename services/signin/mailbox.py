"""The mailbox factor ("otp"): 6-digit codes mailed to the address, one purpose each ("login",
"reset", "register"), and what the first proof of an address does to the account."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import smtplib

from flask_babel import gettext

import codes
import metrics
from config import settings
from errors import ApiError
from models import UserModel
from models.base import utcnow
from services import mailer
from services.signin import accounts
from store import email_codes, sessions

log = logging.getLogger("flask_api.auth")


def code_hash(email: str, code: str, purpose: str) -> str:
    """HMAC of the code, bound to its email and purpose (a login code never passes as a reset code)."""
    key = settings.auth.jwt_secret.encode()
    message = f"{email}:{code}" if purpose == "login" else f"{purpose}:{email}:{code}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def new_code() -> tuple[str, int]:
    """A code, and the minutes it lives, as the mail says them."""
    return f"{secrets.randbelow(1_000_000):06d}", max(1, settings.auth.email_code_ttl // 60)


def claim_resend_window(email: str, purpose: str) -> None:
    wait = email_codes.claim_slot(email, settings.auth.email_code_resend_seconds, purpose)
    if wait:
        raise ApiError.retry_after(codes.AUTH_EMAIL_CODE_TOO_SOON, wait)


def mail(email: str, subject: str, text: str, purpose: str) -> dict[str, int]:
    """Send; if the mail cannot go, no code is pending and the resend window is open again."""
    try:
        mailer.send(email, subject, text)
    except (smtplib.SMTPException, OSError) as exc:
        email_codes.discard(email, purpose)
        log.warning("email code not sent: %s", exc.__class__.__name__)
        metrics.email_code(purpose, "failed")
        raise ApiError(codes.AUTH_EMAIL_SEND_FAILED) from None
    metrics.email_code(purpose, "sent")
    return {"resend_after": settings.auth.email_code_resend_seconds}


def notify(email: str, subject: str, text: str) -> None:
    """Tell the owner of an address that something changed; the change stands whether the mail goes
    or not (a failure is logged)."""
    try:
        mailer.send(email, subject, text)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("notice not sent: %s", exc.__class__.__name__)


def send_code(email: str, purpose: str) -> dict[str, int]:
    """Mail a code for purpose ("login" or "reset"); the same mail whether the email has an account or not."""
    claim_resend_window(email, purpose)
    code, minutes = new_code()
    email_codes.store(email, code_hash(email, code, purpose), settings.auth.email_code_ttl, purpose)
    if purpose == "login":
        subject = gettext("Your sign-in code")
        text = gettext("Your sign-in code is %(code)s. It expires in %(minutes)s minutes.", code=code, minutes=minutes)
    else:
        subject = gettext("Your password reset code")
        text = gettext("Your password reset code is %(code)s. It expires in %(minutes)s minutes. "
                       "If you did not ask for it, ignore this mail: your password stays as it is.",
                       code=code, minutes=minutes)
    return mail(email, subject, text, purpose)


def consume(email: str, code: str, purpose: str) -> None:
    """Consume a mailed code, or raise why it does not count: wrong (a try of this code's spent),
    or expired (used, burned by its last wrong try, or never sent)."""
    outcome = email_codes.verify(email, code_hash(email, code, purpose), settings.auth.email_code_max_attempts,
                                 purpose)
    if outcome == "wrong":
        raise ApiError(codes.AUTH_EMAIL_CODE_INVALID)
    if outcome != "ok":
        raise ApiError(codes.AUTH_EMAIL_CODE_EXPIRED)


def prove_address(user: UserModel) -> None:
    """A code consumed for the user's address proves the mailbox. The first proof ends whatever
    was set before it by whoever registered the address (perhaps not its owner): the password,
    the two-factor secret and recovery codes, and every session."""
    if user.email_verified_at is not None:
        return
    sessions.revoke_all(user.id)
    accounts.clear_factors(user)
    user.email_verified_at = utcnow()
