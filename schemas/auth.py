"""Request and response schemas of /api/client/auth."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validates_schema

from schemas.common import StrictBoolean, Timestamp, length, six_digits
from schemas.passwords import NewPasswordForEmail, new_password_field


def normalize_email(text: str) -> str:
    """An address as accounts, lockouts and limits know it: trimmed and lower-cased."""
    return text.strip().lower()


class NormalizedEmail(fields.Email):
    """An ASCII email address, trimmed and lower-cased before it is validated.

    Internationalized addresses are refused: look-alike characters would let two
    accounts differ invisibly, and not every mail server speaks SMTPUTF8.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = normalize_email(value)
            if not value.isascii():
                raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def email_field() -> NormalizedEmail:
    return NormalizedEmail(required=True, validate=length(max=254))


_email = email_field()


def valid_email(value: Any) -> str | None:
    """value as an email field would load it, or None if it would refuse it."""
    try:
        return _email.deserialize(value)
    except ValidationError:
        return None


def device_field() -> fields.String:
    return fields.String(load_default=None, validate=length(min=1, max=64),
                         metadata={"description": "optional client device id, kept in the token"})


class RegisterSchema(NewPasswordForEmail):
    email = email_field()
    password = new_password_field()
    nickname = fields.String(load_default=None, validate=length(max=64))


class RegisterConfirmSchema(Schema):
    email = email_field()
    code = fields.String(required=True, load_only=True,
                         validate=six_digits())
    password = fields.String(required=True, load_only=True, validate=length(min=1, max=128),
                             metadata={"description": "the password the registration gave"})
    device_id = device_field()


class LoginSchema(Schema):
    email = email_field()
    password = fields.String(required=True, load_only=True, validate=length(min=1, max=128))
    device_id = device_field()


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, load_only=True, validate=length(min=1, max=4096))


class LogoutSchema(Schema):
    all = StrictBoolean(load_default=False, metadata={"description": "log out every session of the user"})


class SendCodeSchema(Schema):
    email = email_field()


class VerifyCodeSchema(Schema):
    email = email_field()
    code = fields.String(required=True, load_only=True,
                         validate=six_digits())
    device_id = device_field()


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    nickname = fields.String(allow_none=True)
    login_count = fields.Integer()
    last_login_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class TokenPairSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "seconds until the access token expires"})
    refresh_expires_in = fields.Integer(metadata={"description": "seconds until the refresh token expires"})


class AuthResultSchema(TokenPairSchema):
    user = fields.Nested(UserSchema)


class ResendSchema(Schema):
    resend_after = fields.Integer(metadata={"description": "seconds before another code may be requested"})


class TwoFactorChallengeSchema(Schema):
    mfa_required = fields.Boolean(metadata={"description": "always true: send mfa_token to POST /2fa/verify"})
    mfa_token = fields.String(metadata={"description": "usable once, for expires_in seconds"})
    expires_in = fields.Integer()
    needs = fields.List(fields.String(), metadata={"description": "the factors that can complete the sign-in, "
                                                                  "any one of them: totp, recovery"})


class TwoFactorVerifySchema(Schema):
    mfa_token = fields.String(required=True, load_only=True, validate=length(min=1, max=4096))
    code = fields.String(load_default=None, load_only=True, validate=six_digits(),
                         metadata={"description": "the authenticator app's 6 digits"})
    recovery_code = fields.String(load_default=None, load_only=True, validate=length(min=1, max=64))
    passkey = fields.Dict(load_default=None, load_only=True, metadata={
        "description": "a passkey's assertion for the options of POST /2fa/passkey/options, as JSON"})
    device_id = device_field()
    EXACTLY_ONE = (("code", "recovery_code", "passkey"),)  # what one_code checks, for the document (api.py)

    @validates_schema
    def one_code(self, data: dict[str, Any], **kwargs: Any) -> None:
        if sum(data[name] is not None for name in ("code", "recovery_code", "passkey")) != 1:
            raise ValidationError({"code": [str(_l("Give one of the code, a recovery code or a passkey."))]})


class ReauthenticateSchema(Schema):
    """The password or a mailed sign-in code; and, where two-factor is on, a TOTP or recovery code."""

    password = fields.String(load_default=None, load_only=True, validate=length(min=1, max=128))
    code = fields.String(load_default=None, load_only=True, validate=six_digits(),
                         metadata={"description": "a sign-in code from send-email-code"})
    totp_code = fields.String(load_default=None, load_only=True, validate=six_digits(),
                              metadata={"description": "the authenticator app's 6 digits"})
    recovery_code = fields.String(load_default=None, load_only=True, validate=length(min=1, max=64))
    EXACTLY_ONE = (("password", "code"),)  # what one_proof checks, for the document (api.py)
    AT_MOST_ONE = (("totp_code", "recovery_code"),)

    @validates_schema
    def one_proof(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data["password"] is None) == (data["code"] is None):
            raise ValidationError({"password": [str(_l("Give either the password or a code."))]})
        if data["totp_code"] is not None and data["recovery_code"] is not None:
            raise ValidationError({"totp_code": [str(_l("Give either the code or a recovery code."))]})
