"""/api/client/auth: register, log in by password or emailed code, refresh, log out, me."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from api import arguments, parsed_json, response
from blueprints.user_dependencies import current_user, login_required
from extensions import client_ip, limiter
from schemas.auth import (
    AuthResultSchema,
    LoginSchema,
    LogoutSchema,
    RefreshSchema,
    RegisterSchema,
    ResendSchema,
    SendCodeSchema,
    TokenPairSchema,
    UserSchema,
    VerifyCodeSchema,
)
from schemas.common import Dumped
from services import auth

bp = Blueprint("auth", __name__, url_prefix="/api/client/auth")


def rate(name: str):
    """A limit read from auth.rate_limits when the request comes, so each app uses its own config."""
    return lambda: current_app.config["AUTH"]["rate_limits"][name]


def email_key() -> str:
    body = parsed_json()
    email = body.get("email") if isinstance(body, dict) else None
    return "email:" + (email.strip().lower() if isinstance(email, str) else "")


@bp.after_request
def no_store(resp: Response) -> Response:
    """Token responses must not be cached by browsers or proxies."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/register")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@response(AuthResultSchema, status=201)
@arguments(RegisterSchema)
def register(body):
    """Create an account with email and password; answers a token pair and the user."""
    return auth.register(body["email"], body["password"], body["nickname"])


@bp.post("/login")
@limiter.limit(rate("login_per_ip"), key_func=client_ip)
@limiter.limit(rate("login_per_email"), key_func=email_key)
@response(AuthResultSchema)
@arguments(LoginSchema)
def login(body):
    """Log in with email and password."""
    return auth.login(body["email"], body["password"], body["device_id"])


@bp.post("/refresh")
@limiter.limit(rate("refresh_per_ip"), key_func=client_ip)
@response(TokenPairSchema)
@arguments(RefreshSchema)
def refresh(body):
    """Swap a refresh token for a new pair (rotation with a grace window)."""
    return auth.refresh(body["refresh_token"])


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
@limiter.limit(rate("send_code_per_ip"), key_func=client_ip)
@limiter.limit(rate("send_code_per_email"), key_func=email_key)
@response(ResendSchema)
@arguments(SendCodeSchema)
def send_email_code(body):
    """Mail a 6-digit sign-in code."""
    return auth.send_email_code(body["email"])


@bp.post("/email-verify-login")
@limiter.limit(rate("verify_code_per_ip"), key_func=client_ip)
@limiter.limit(rate("verify_code_per_email"), key_func=email_key)
@response(AuthResultSchema)
@arguments(VerifyCodeSchema)
def email_verify_login(body):
    """Log in with an emailed code; the account is created on first use."""
    return auth.email_code_login(body["email"], body["code"], body["device_id"])
