"""/api/client/auth/passkeys: add and manage passkeys, sign in with one (no password, no email
typed), and complete the two-factor challenge with one. JSON and bearer tokens only."""

from __future__ import annotations

from flask import Blueprint

import codes
from api import arguments, response
from blueprints.auth import challenged, credential_checks_per_ip, no_store
from blueprints.user_dependencies import current_user, login_required
from extensions import client_ip
from schemas.auth import AuthResultSchema, TwoFactorChallengeSchema
from schemas.passkeys import (
    PasskeyAddSchema,
    PasskeyListSchema,
    PasskeyOptionsSchema,
    PasskeyRenameSchema,
    PasskeySchema,
    PasskeySignInChallengeSchema,
    PasskeySignInSchema,
    SecondStepOptionsSchema,
)
from services import account
from services.signin import passkeys, ways

bp = Blueprint("passkeys", __name__, url_prefix="/api/client/auth")
bp.after_request(no_store)

CEREMONY_ERRORS = [codes.PASSKEY_INVALID, codes.PASSKEY_CHALLENGE_EXPIRED]


@bp.post("/passkeys/register/options")
@login_required(step_up=True)
@response(PasskeyOptionsSchema, errors=[codes.AUTH_EMAIL_UNPROVEN])
def add_options():
    """Creation options for a new passkey of the signed-in user's (a recent sign-in)."""
    return account.add_passkey_options(current_user().user_id)


@bp.post("/passkeys/register/verify")
@credential_checks_per_ip()
@login_required
@response(PasskeySchema, status=201, errors=[*CEREMONY_ERRORS, codes.PASSKEY_EXISTS])
@arguments(PasskeyAddSchema)
def add(body):
    """Keep the passkey the device made for those options."""
    return account.add_passkey(current_user().user_id, body["credential"], body["name"])


@bp.get("/passkeys")
@login_required
@response(PasskeyListSchema)
def list_passkeys():
    """The signed-in user's passkeys."""
    return account.list_passkeys(current_user().user_id)


@bp.patch("/passkeys/<int:passkey_id>")
@login_required
@response(PasskeySchema, errors=[codes.PASSKEY_NOT_FOUND])
@arguments(PasskeyRenameSchema)
def rename(body, passkey_id: int):
    """Rename one of the signed-in user's passkeys."""
    return account.rename_passkey(current_user().user_id, passkey_id, body["name"])


@bp.delete("/passkeys/<int:passkey_id>")
@login_required(step_up=True)
@response(errors=[codes.PASSKEY_NOT_FOUND])
def remove(passkey_id: int):
    """Remove one of the signed-in user's passkeys (a recent sign-in); every other session ends."""
    ctx = current_user()
    account.remove_passkey(ctx.user_id, ctx.sid, passkey_id)


@bp.post("/passkeys/login/options")
@credential_checks_per_ip()
@response(PasskeySignInChallengeSchema)
def sign_in_options():
    """Request options for signing in with a passkey: the device lets the user pick an account."""
    return passkeys.sign_in_options()


@bp.post("/passkeys/login/verify")
@credential_checks_per_ip()
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema}, errors=CEREMONY_ERRORS)
@arguments(PasskeySignInSchema)
def sign_in(body):
    """Sign in with the passkey's assertion: a token pair (or, where two-factor is on and the
    authenticator did not verify its user, 202 and a challenge)."""
    return challenged(ways.passkey_sign_in(body["flow_id"], body["credential"], body["device_id"], client_ip()))


@bp.post("/2fa/passkey/options")
@credential_checks_per_ip()
@response(PasskeyOptionsSchema, errors=[codes.AUTH_TOKEN_INVALID, codes.AUTH_TOKEN_EXPIRED, codes.PASSKEY_NOT_FOUND])
@arguments(SecondStepOptionsSchema)
def second_step_options(body):
    """Request options for completing a two-factor challenge with a passkey (POST /2fa/verify)."""
    return {"options": ways.second_step_passkey_options(body["mfa_token"])}
