"""/api/client/auth, the user's own account: profile, password change and reset, sessions by device."""

from __future__ import annotations

from flask import Blueprint

import codes
from api import arguments, documented, response
from blueprints.auth import per_email, rate
from blueprints.user_dependencies import current_user, login_required
from extensions import client_ip, limiter
from schemas.account import (
    AccountDeleteSchema,
    ActivityPageSchema,
    ActivityQuerySchema,
    PasswordChangeSchema,
    PasswordResetSchema,
    ProfileSchema,
    RecoveryCodesSchema,
    SessionListSchema,
    TwoFactorCodeSchema,
    TwoFactorDisableSchema,
    TwoFactorSetupSchema,
)
from schemas.auth import AuthResultSchema, ResendSchema, SendCodeSchema, TwoFactorVerifySchema, UserSchema
from schemas.common import Dumped
from services import account, audit, auth, two_factor

bp = Blueprint("account", __name__, url_prefix="/api/client/auth")


@bp.patch("/me")
@login_required
@response(UserSchema, errors=[codes.AUTH_INVALID_CREDENTIALS])
@arguments(ProfileSchema)
def update_me(body):
    """Change the signed-in user's profile."""
    return Dumped(account.update_profile(current_user().user_id, body["nickname"]))


@bp.delete("/me")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@login_required
@response(errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED, codes.AUTH_EMAIL_CODE_INVALID,
                  codes.AUTH_EMAIL_CODE_EXPIRED, codes.AUTH_EMAIL_CODE_BLOCKED])
@arguments(AccountDeleteSchema)
def delete_me(body):
    """Delete the signed-in user's account (with the password or a mailed sign-in code)."""
    account.delete_account(current_user().user_id, body["password"], body["code"])


@bp.post("/password")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@login_required
@response(AuthResultSchema, errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(PasswordChangeSchema)
def change_password(body):
    """Change the password; every earlier token ends, and this device gets a fresh pair."""
    user = current_user()
    return account.change_password(user.user_id, body["current_password"], body["new_password"], user.device_id,
                                   client_ip())


@bp.post("/password/forgot")
@per_email("send_code_per_email")
@limiter.limit(rate("send_code_per_ip"), key_func=client_ip)
@response(ResendSchema, errors=[codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(SendCodeSchema)
def forgot_password(body):
    """Mail a 6-digit password reset code; the same answer whether the email has an account or not."""
    return auth.send_email_code(body["email"], purpose="reset")


@bp.post("/password/reset")
@per_email("verify_code_per_email")
@limiter.limit(rate("verify_code_per_ip"), key_func=client_ip)
@response(AuthResultSchema, errors=[codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED,
                                    codes.AUTH_EMAIL_CODE_BLOCKED, codes.AUTH_INVALID_CREDENTIALS])
@arguments(PasswordResetSchema)
def reset_password(body):
    """Set a new password with the mailed reset code; every session ends, a fresh pair answers."""
    return auth.reset_password(body["email"], body["code"], body["new_password"], body["device_id"], client_ip())


@bp.post("/2fa/setup")
@login_required
@response(TwoFactorSetupSchema, errors=[codes.AUTH_TWO_FACTOR_ON])
def two_factor_setup():
    """Begin two-factor sign-in: a new TOTP secret, its otpauth:// URI and QR code (not in force until enabled)."""
    return two_factor.setup(current_user().user_id)


@bp.post("/2fa/enable")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@login_required
@response(RecoveryCodesSchema, errors=[codes.AUTH_TWO_FACTOR_ON, codes.AUTH_TWO_FACTOR_NOT_SET_UP,
                                       codes.AUTH_TWO_FACTOR_CODE_INVALID])
@arguments(TwoFactorCodeSchema)
def two_factor_enable(body):
    """Turn two-factor sign-in on with a first code; answers 10 recovery codes, shown this once."""
    return two_factor.enable(current_user().user_id, body["code"])


@bp.post("/2fa/disable")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@login_required
@response(errors=[codes.AUTH_TWO_FACTOR_NOT_SET_UP, codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(TwoFactorDisableSchema)
def two_factor_disable(body):
    """Turn two-factor sign-in off, with a current code, a recovery code or the password."""
    two_factor.disable(current_user().user_id, body["code"], body["password"])


@bp.post("/2fa/verify")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@response(AuthResultSchema, errors=[codes.AUTH_TOKEN_INVALID, codes.AUTH_TOKEN_EXPIRED, codes.AUTH_TOKEN_REVOKED,
                                    codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(TwoFactorVerifySchema)
def two_factor_verify(body):
    """The second step of a login: the challenge and a TOTP or recovery code answer the token pair."""
    return two_factor.verify(body["mfa_token"], body["code"], body["recovery_code"], client_ip())


@bp.get("/activity")
@login_required
@response(ActivityPageSchema)
@arguments(ActivityQuerySchema, location="query")
def activity(query):
    """The signed-in user's account events, newest first: sign-ins, wrong passwords, password changes, ..."""
    return audit.recent(current_user().user_id, query["page"], query["page_size"])


@bp.get("/sessions")
@login_required
@response(SessionListSchema)
def list_sessions():
    """The signed-in user's live sessions, newest use first."""
    user = current_user()
    return account.list_sessions(user.user_id, user.sid)


@bp.delete("/sessions/<session_id>")
@documented(parameters=[{"in": "path", "name": "session_id", "required": True,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 64}}])
@login_required
@response(errors=[codes.AUTH_SESSION_NOT_FOUND])
def end_session(session_id: str):
    """End one of the signed-in user's sessions (its tokens stop working at once)."""
    account.end_session(current_user().user_id, session_id)
