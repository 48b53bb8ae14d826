"""/api/client/auth: register, log in by password or emailed code, refresh, log out, me."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Blueprint, Response, g
from flask.blueprints import BlueprintSetupState

import codes
from api import arguments, parsed_json, response
from blueprints.user_dependencies import current_user, login_required
from config import settings
from extensions import client_ip, limiter
from schemas.auth import (
    AuthResultSchema,
    LoginSchema,
    LogoutSchema,
    RefreshSchema,
    RegisterConfirmSchema,
    RegisterSchema,
    ResendSchema,
    SendCodeSchema,
    TokenPairSchema,
    TwoFactorChallengeSchema,
    UserSchema,
    VerifyCodeSchema,
    valid_email,
)
from schemas.common import Dumped
from services import auth
from store import keys

bp = Blueprint("auth", __name__, url_prefix="/api/client/auth")


@bp.record
def build_password_hasher(state: BlueprintSetupState) -> None:
    auth.init_app(state.app)


def rate(name: str):
    """A limit read from auth.rate_limits when the request comes, so each app uses its own config."""
    return lambda: getattr(settings.auth.rate_limits, name)


def body_email() -> str | None:
    """The body's email if it is a valid address (normalized), once per request; else None."""
    if "body_email" not in g:
        body = parsed_json()
        g.body_email = valid_email(body.get("email")) if isinstance(body, dict) else None
    return g.body_email


def email_key() -> str:
    """A digest, never the address: a limiter key stays small and says nothing about its owner."""
    return keys.rate_limit_email(body_email())


def per_email(name: str, applies: Callable[[], bool] = lambda: True, on_breach: Callable | None = None):
    """The per-email limit of name (while applies()). A body without a valid email is refused by its
    schema anyway, so it is counted by the per-IP limit only. Put it above the per-IP decorator:
    limits of one granularity run bottom-up, and a request the IP limit refuses must not store an
    email key."""
    return limiter.limit(rate(name), key_func=email_key, exempt_when=lambda: body_email() is None or not applies(),
                         on_breach=on_breach)


def login_refused(limit: object) -> None:
    """on_breach of the login limits: the refusal goes into the account's history; the 429 answers as ever."""
    auth.note_rate_limited(body_email())


@bp.after_request
def no_store(resp: Response) -> Response:
    """Token responses must not be cached by browsers or proxies."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/register")
@per_email("send_code_per_email", applies=auth.confirmation_required)  # it mails a code then
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@response(AuthResultSchema, status=201, also={202: ResendSchema},
          errors=[codes.USER_EMAIL_TAKEN, codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(RegisterSchema)
def register(body):
    """Create an account with email and password (201, a token pair and the user); with
    auth.require_email_confirmation, mail a code instead (202, the same for a taken email)."""
    if auth.confirmation_required():
        return auth.begin_registration(body["email"], body["password"], body["nickname"]), 202
    return auth.register(body["email"], body["password"], body["nickname"], client_ip())


@bp.post("/register/confirm")
@per_email("verify_code_per_email")
@limiter.limit(rate("verify_code_per_ip"), key_func=client_ip)
@response(AuthResultSchema, status=201,
          errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED,
                  codes.AUTH_EMAIL_CODE_BLOCKED, codes.USER_EMAIL_TAKEN])
@arguments(RegisterConfirmSchema)
def confirm_registration(body):
    """Create the account a registration mailed a code for; answers a token pair and the user."""
    return auth.confirm_registration(body["email"], body["code"], body["password"], body["device_id"], client_ip())


@bp.post("/login")
@per_email("login_per_email", on_breach=login_refused)
@limiter.limit(rate("login_per_ip"), key_func=client_ip, on_breach=login_refused)
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(LoginSchema)
def login(body):
    """Log in with email and password; with two-factor on, 202 and a challenge for POST /2fa/verify."""
    return challenged(auth.login(body["email"], body["password"], body["device_id"], client_ip()))


def challenged(result: dict) -> dict | tuple[dict, int]:
    """A login that asks for the second factor answers 202 with the challenge instead of tokens."""
    return (result, 202) if result.get("mfa_required") else result


def counted_when_unread(view: Callable) -> Callable:
    """auth.rate_limits.refresh_per_ip, for a refresh refused before its view (its body): the
    service counts every other one, inside the rotation's own Redis call (Flask-Limiter would
    make a call of its own, and cost more than the rest of the check)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except Exception:
            if "refresh_read" not in g:
                auth.count_refresh(client_ip())
            raise

    return wrapper


@bp.post("/refresh")
@response(TokenPairSchema, errors=[codes.AUTH_TOKEN_INVALID, codes.AUTH_TOKEN_EXPIRED, codes.AUTH_TOKEN_REVOKED,
                                   codes.RATE_LIMITED])
@counted_when_unread
@arguments(RefreshSchema)
def refresh(body):
    """Swap a refresh token for a new pair (rotation with a grace window)."""
    g.refresh_read = True  # the service counts it from here on
    return auth.refresh(body["refresh_token"], client_ip())


@bp.post("/logout")
@login_required
@response()
@arguments(LogoutSchema)
def logout(body):
    """Log out this session, or every session with {"all": true}."""
    ctx = current_user()
    auth.logout(ctx.user_id, ctx.sid, body["all"])


@bp.get("/me")
@login_required
@response(UserSchema)
def me():
    """The signed-in user."""
    return Dumped(current_user().user)  # the snapshot is kept in UserSchema's form


@bp.post("/send-email-code")
@per_email("send_code_per_email")
@limiter.limit(rate("send_code_per_ip"), key_func=client_ip)
@response(ResendSchema, errors=[codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(SendCodeSchema)
def send_email_code(body):
    """Mail a 6-digit sign-in code."""
    return auth.send_email_code(body["email"])


@bp.post("/email-verify-login")
@per_email("verify_code_per_email")
@limiter.limit(rate("verify_code_per_ip"), key_func=client_ip)
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED, codes.AUTH_EMAIL_CODE_BLOCKED,
                  codes.AUTH_INVALID_CREDENTIALS])
@arguments(VerifyCodeSchema)
def email_verify_login(body):
    """Log in with an emailed code (the account is created on first use); with two-factor on, 202 and a challenge."""
    return challenged(auth.email_code_login(body["email"], body["code"], body["device_id"], client_ip()))
