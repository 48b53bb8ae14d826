"""Request and response schemas of the signed-in user's own account: profile, password, sessions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from schemas.auth import VerifyCodeSchema
from schemas.common import Timestamp, WholeNumber, between, length, one_of, six_digits
from schemas.passwords import NewPasswordForEmail, new_password_field
from services.audit import EVENTS


class ProfileSchema(Schema):
    nickname = fields.String(required=True, allow_none=True, validate=length(max=64),
                             metadata={"description": "null clears it"})


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, load_only=True, validate=length(min=1, max=128))
    new_password = new_password_field()


class PasswordResetSchema(VerifyCodeSchema, NewPasswordForEmail):
    """email, code (from POST /password/forgot), device_id, and the new password."""

    PASSWORD_FIELD = "new_password"
    new_password = new_password_field()


class AccountDeleteSchema(Schema):
    """The password, or a sign-in code from send-email-code (for an account without a password)."""

    password = fields.String(load_default=None, load_only=True, validate=length(min=1, max=128))
    code = fields.String(load_default=None, load_only=True,
                         validate=six_digits())

    EXACTLY_ONE = (("password", "code"),)  # what one_proof checks, for the document (api.py)

    @validates_schema
    def one_proof(self, data: dict, **kwargs: object) -> None:
        if (data["password"] is None) == (data["code"] is None):
            raise ValidationError({"password": [str(_l("Give either the password or a code."))]})


class SessionSchema(Schema):
    id = fields.String(metadata={"description": "the session's id, for DELETE /sessions/{id}"})
    device_id = fields.String(allow_none=True)
    created_at = Timestamp()
    last_used_at = Timestamp(metadata={"description": "the login, or the session's last refresh"})
    ip = fields.String(allow_none=True, metadata={"description": "the address of that use"})
    current = fields.Boolean(metadata={"description": "the session of the token that asked"})


class SessionListSchema(Schema):
    items = fields.List(fields.Nested(SessionSchema))


class ActivityQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # ?lang= and the like travel in the same query string

    page = WholeNumber(in_query=True, load_default=1, validate=between(1, 100))
    page_size = WholeNumber(in_query=True, load_default=20, validate=between(1, 50))
    event = fields.String(load_default=None, validate=one_of(sorted(EVENTS)),
                          metadata={"description": "only events of this kind"})


class AccountEventSchema(Schema):
    event = fields.String(metadata={"description": "login, login_wrong_password, password_changed, ..."})
    description = fields.String(metadata={"description": "what happened, in the request's language"})
    ip = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    created_at = Timestamp(metadata={"description": "when it happened (the first of count repeats)"})
    count = fields.Integer(metadata={"description": "how many times it happened from created_at to last_at "
                                                    "(repeated refused sign-ins fold into one row an hour)"})
    last_at = Timestamp(metadata={"description": "the last of the repeats"})
    detail = fields.Dict(metadata={"description": "ids that say more (a session, a purpose); never a secret"})


class ActivityPageSchema(Schema):
    items = fields.List(fields.Nested(AccountEventSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TwoFactorSetupSchema(Schema):
    secret = fields.String(metadata={"description": "base32, for apps that take it typed in"})
    otpauth_uri = fields.String(metadata={"description": "otpauth://totp/..., what the QR code holds"})
    qr_svg = fields.String(metadata={"description": "the QR code as an inline SVG image"})


class TwoFactorCodeSchema(Schema):
    code = fields.String(required=True, load_only=True, validate=six_digits())


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(fields.String(), metadata={"description": "shown this once; each works once"})


class TwoFactorDisableSchema(Schema):
    code = fields.String(load_default=None, load_only=True, validate=length(min=6, max=64),
                         metadata={"description": "a current code, or a recovery code"})
    password = fields.String(load_default=None, load_only=True, validate=length(min=1, max=128))

    EXACTLY_ONE = (("password", "code"),)  # what one_proof checks, for the document (api.py)

    @validates_schema
    def one_proof(self, data: dict, **kwargs: object) -> None:
        if (data["password"] is None) == (data["code"] is None):
            raise ValidationError({"password": [str(_l("Give either the password or a code."))]})
