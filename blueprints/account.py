"""/api/client/auth, the user's own account: profile, password change and reset, sessions by device."""

from __future__ import annotations

from flask import Blueprint

import codes
from api import arguments, documented, response
from blueprints.auth import (
    challenged,
    codes_mailed_per_email,
    codes_mailed_per_ip,
    credential_checks_per_ip,
    no_store,
)
from blueprints.user_dependencies import current_user, login_required
from extensions import client_ip
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
from schemas.auth import (
    AuthResultSchema,
    ResendSchema,
    SendCodeSchema,
    TwoFactorChallengeSchema,
    TwoFactorVerifySchema,
    UserSchema,
)
from schemas.common import Dumped
from services import account, audit
from services.signin import ways

bp = Blueprint("account", __name__, url_prefix="/api/client/auth")
bp.after_request(no_store)  # tokens (a reset, a second step), a TOTP secret and recovery codes


@bp.patch("/me")
@login_required
@response(UserSchema, errors=[codes.AUTH_INVALID_CREDENTIALS])
@arguments(ProfileSchema)
def update_me(body):
    """Change the signed-in user's profile."""
    return Dumped(account.update_profile(current_user().user_id, body["nickname"]))


@bp.delete("/me")
@credential_checks_per_ip()
@login_required(step_up=True)
@response(errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED, codes.AUTH_EMAIL_CODE_INVALID,
                  codes.AUTH_EMAIL_CODE_EXPIRED])
@arguments(AccountDeleteSchema)
def delete_me(body):
    """Delete the signed-in user's account (a recent sign-in, and the password or a mailed sign-in code)."""
    account.delete_account(current_user().user_id, body["password"], body["code"])


@bp.post("/password")
@credential_checks_per_ip()
@login_required
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(PasswordChangeSchema)
def change_password(body):
    """Change the password; every earlier token ends, and this device signs in again: a fresh
    pair, or with two-factor on, 202 and a challenge."""
    user = current_user()
    return challenged(account.change_password(user.user_id, body["current_password"], body["new_password"],
                                              user.device_id, client_ip()))


@bp.post("/password/forgot")
@codes_mailed_per_email()
@codes_mailed_per_ip()
@response(ResendSchema, errors=[codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(SendCodeSchema)
def forgot_password(body):
    """Mail a 6-digit password reset code; the same answer whether the email has an account or not."""
    return ways.send_email_code(body["email"], purpose="reset")


@bp.post("/password/reset")
@credential_checks_per_ip()
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED, codes.AUTH_INVALID_CREDENTIALS])
@arguments(PasswordResetSchema)
def reset_password(body):
    """Set a new password with the mailed reset code; every session ends, and a fresh pair answers,
    or with two-factor on, 202 and a challenge (two-factor stays on)."""
    return challenged(ways.reset_password(body["email"], body["code"], body["new_password"], body["device_id"],
                                          client_ip()))


@bp.post("/2fa/setup")
@login_required(step_up=True)
@response(TwoFactorSetupSchema, errors=[codes.AUTH_TWO_FACTOR_ON, codes.AUTH_EMAIL_UNPROVEN])
def two_factor_setup():
    """Begin two-factor sign-in (a recent sign-in): a new TOTP secret, its otpauth:// URI and QR
    code (not in force until enabled)."""
    return account.set_up_two_factor(current_user().user_id)


@bp.post("/2fa/enable")
@credential_checks_per_ip()
@login_required(step_up=True)
@response(RecoveryCodesSchema, errors=[codes.AUTH_TWO_FACTOR_ON, codes.AUTH_TWO_FACTOR_NOT_SET_UP,
                                       codes.AUTH_TWO_FACTOR_CODE_INVALID, codes.AUTH_EMAIL_UNPROVEN])
@arguments(TwoFactorCodeSchema)
def two_factor_enable(body):
    """Turn two-factor sign-in on with a first code (a recent sign-in); every other session ends.
    Answers 10 recovery codes, shown this once."""
    ctx = current_user()
    return account.enable_two_factor(ctx.user_id, ctx.sid, body["code"])


@bp.post("/2fa/disable")
@credential_checks_per_ip()
@login_required(step_up=True)
@response(errors=[codes.AUTH_TWO_FACTOR_NOT_SET_UP, codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED,
                  codes.AUTH_TWO_FACTOR_CODE_INVALID])
@arguments(TwoFactorDisableSchema)
def two_factor_disable(body):
    """Turn two-factor sign-in off (a recent sign-in with both factors), with a current code, a
    recovery code or the password."""
    account.disable_two_factor(current_user().user_id, body["code"], body["password"])


@bp.post("/2fa/verify")
@credential_checks_per_ip()
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_TOKEN_INVALID, codes.AUTH_TOKEN_EXPIRED, codes.AUTH_TOKEN_REVOKED,
                  codes.AUTH_TWO_FACTOR_CODE_INVALID, codes.AUTH_ACCOUNT_LOCKED,
                  codes.PASSKEY_INVALID, codes.PASSKEY_CHALLENGE_EXPIRED])
@arguments(TwoFactorVerifySchema)
def two_factor_verify(body):
    """The second step of a sign-in: the challenge and a TOTP code, a recovery code or a passkey
    answer the token pair."""
    return challenged(ways.second_step(body["mfa_token"], body["code"], body["recovery_code"], body["passkey"],
                                       client_ip()))


@bp.get("/activity")
@login_required
@response(ActivityPageSchema)
@arguments(ActivityQuerySchema, location="query")
def activity(query):
    """The signed-in user's account events, newest first (of one kind with ?event=): sign-ins, wrong
    passwords, password changes, ..."""
    return audit.recent(current_user().user_id, query["page"], query["page_size"], query["event"])


@bp.get("/sessions")
@login_required
@response(SessionListSchema)
def list_sessions():
    """The signed-in user's live sessions, newest use first."""
    user = current_user()
    return account.list_sessions(user.user_id, user.sid)


@bp.delete("/sessions")
@login_required(step_up=True)
@response()
def end_other_sessions():
    """End every session but this one (a recent sign-in): their tokens stop working at once."""
    ctx = current_user()
    account.end_other_sessions(ctx.user_id, ctx.sid)


@bp.delete("/sessions/<session_id>")
@documented(parameters=[{"in": "path", "name": "session_id", "required": True,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 64}}])
@login_required(step_up=True)
@response(errors=[codes.AUTH_SESSION_NOT_FOUND])
def end_session(session_id: str):
    """End one of the signed-in user's sessions (a recent sign-in; its tokens stop working at once)."""
    account.end_session(current_user().user_id, session_id)
