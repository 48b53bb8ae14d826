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
    ReauthenticateSchema,
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
from services.signin import passwords, registration, ways
from services.signin import sessions as signin_sessions
from store import keys

bp = Blueprint("auth", __name__, url_prefix="/api/client/auth")


@bp.record
def build_password_hasher(state: BlueprintSetupState) -> None:
    passwords.init_app(state.app)


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


def always() -> bool:
    return True


def per_email(name: str, on_breach: Callable | None = None):
    """The per-email limit of name. A body without a valid email is refused by its schema anyway,
    so it is counted by the per-IP limit only. Put it above the per-IP decorator: limits of one
    granularity run bottom-up, the first refusal ends the check, and a request the IP limit
    refuses must store no email key."""
    return limiter.limit(rate(name), key_func=email_key, exempt_when=lambda: body_email() is None,
                         on_breach=on_breach)


def credential_checks_per_ip():
    """One per-IP budget for every route that checks a password or a code (auth.rate_limits.login_per_ip)."""
    return limiter.shared_limit(rate("login_per_ip"), "credential_checks", key_func=client_ip)


def codes_mailed_per_ip(applies: Callable[[], bool] = always):
    """One per-IP budget for every route that mails a code (auth.rate_limits.send_code_per_ip)."""
    return limiter.shared_limit(rate("send_code_per_ip"), "codes_mailed", key_func=client_ip,
                                exempt_when=lambda: not applies())


def mailed(response: Response) -> bool:
    """A code went out: only those count toward an address's mail budget, so that requests refused
    as too soon cost its owner nothing."""
    return response.status_code in (200, 202)


def codes_mailed_per_email(applies: Callable[[], bool] = always):
    """The mails an address gets: send_code_per_email from one client address, and
    send_code_per_email_any_ip from all of them, so that one sender cannot use up the owner's."""
    exempt = lambda: body_email() is None or not applies()  # noqa: E731
    from_one = limiter.shared_limit(rate("send_code_per_email"), "codes_mailed_from",
                                    key_func=lambda: keys.rate_limit_email_from(body_email(), client_ip()),
                                    exempt_when=exempt, deduct_when=mailed)
    from_any = limiter.shared_limit(rate("send_code_per_email_any_ip"), "codes_mailed_to", key_func=email_key,
                                    exempt_when=exempt, deduct_when=mailed)
    return lambda view: from_any(from_one(view))


def login_refused(limit: object) -> None:
    """on_breach of the per-email login limit: the refusal goes into the account's history (once a
    minute at most); the 429 answers as ever. A refusal of the per-IP limit is not noted: a flood of
    them from one address, each naming another email, must cost neither Redis keys nor queries."""
    ways.note_rate_limited(body_email())


@bp.after_request
def no_store(resp: Response) -> Response:
    """Answers with tokens or secrets must not be kept by browsers or proxies (every answer of the
    account routes: tests/test_openapi.py checks each operation whose answer holds one)."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/register")
@codes_mailed_per_email(applies=registration.confirmation_required)  # it mails a code then
@codes_mailed_per_ip(applies=registration.confirmation_required)
@credential_checks_per_ip()
@response(AuthResultSchema, status=201, also={202: ResendSchema},
          errors=[codes.USER_EMAIL_TAKEN, codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(RegisterSchema)
def register(body):
    """Create an account with email and password (201, a token pair and the user); with
    auth.require_email_confirmation, mail a code instead (202, the same for a taken email)."""
    if registration.confirmation_required():
        return registration.begin(body["email"], body["password"], body["nickname"]), 202
    return registration.register(body["email"], body["password"], body["nickname"], client_ip())


@bp.post("/register/confirm")
@credential_checks_per_ip()
@response(AuthResultSchema, status=201,
          errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED,
                  codes.USER_EMAIL_TAKEN])
@arguments(RegisterConfirmSchema)
def confirm_registration(body):
    """Create the account a registration mailed a code for; answers a token pair and the user."""
    return registration.confirm(body["email"], body["code"], body["password"], body["device_id"], client_ip())


@bp.post("/login")
@per_email("login_per_email", on_breach=login_refused)
@credential_checks_per_ip()
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED])
@arguments(LoginSchema)
def login(body):
    """Log in with email and password; with two-factor on, 202 and a challenge for POST /2fa/verify."""
    return challenged(ways.login(body["email"], body["password"], body["device_id"], client_ip()))


def challenged(result: dict) -> dict | tuple[dict, int]:
    """A sign-in that asks for another factor answers 202 with the challenge instead of tokens."""
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
                signin_sessions.count_refresh(client_ip())
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
    return signin_sessions.refresh(body["refresh_token"], client_ip())


@bp.post("/reauthenticate")
@credential_checks_per_ip()
@login_required
@response(AuthResultSchema, errors=[codes.AUTH_INVALID_CREDENTIALS, codes.AUTH_ACCOUNT_LOCKED,
                                    codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED,
                                    codes.AUTH_TWO_FACTOR_CODE_INVALID])
@arguments(ReauthenticateSchema)
def reauthenticate(body):
    """Prove again (the password or a mailed code, and the second factor where on) for a sensitive
    change: a fresh pair for this same session."""
    ctx = current_user()
    return ways.reauthenticate(ctx.user_id, ctx.sid, ctx.device_id, body, client_ip())


@bp.post("/logout")
@login_required
@response()
@arguments(LogoutSchema)
def logout(body):
    """Log out this session, or every session with {"all": true}."""
    ctx = current_user()
    signin_sessions.logout(ctx.user_id, ctx.sid, body["all"])


@bp.get("/me")
@login_required
@response(UserSchema)
def me():
    """The signed-in user."""
    return Dumped(current_user().user)  # the snapshot is kept in UserSchema's form


@bp.post("/send-email-code")
@codes_mailed_per_email()
@codes_mailed_per_ip()
@response(ResendSchema, errors=[codes.AUTH_EMAIL_CODE_TOO_SOON, codes.AUTH_EMAIL_SEND_FAILED])
@arguments(SendCodeSchema)
def send_email_code(body):
    """Mail a 6-digit sign-in code."""
    return ways.send_email_code(body["email"])


@bp.post("/email-verify-login")
@credential_checks_per_ip()
@response(AuthResultSchema, also={202: TwoFactorChallengeSchema},
          errors=[codes.AUTH_EMAIL_CODE_INVALID, codes.AUTH_EMAIL_CODE_EXPIRED, codes.AUTH_INVALID_CREDENTIALS])
@arguments(VerifyCodeSchema)
def email_verify_login(body):
    """Log in with an emailed code (the account is created on first use); with two-factor on, 202 and a challenge."""
    return challenged(ways.email_code_login(body["email"], body["code"], body["device_id"], client_ip()))
