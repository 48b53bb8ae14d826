"""What a new password must not be: one of the most common passwords, or the name in the account's
email address. The list is zxcvbn's (30,000 passwords from leaked sets, ranked by how often they
appear); it ships in the zxcvbn package, so checking makes no network call. It is read when a
password is first checked (workarounds.common_passwords says how)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validates_schema

import workarounds
from schemas.common import length

TOO_COMMON = _l("This password is too common: choose another.")
LIKE_EMAIL = _l("The password must not be the name in your email address.")


def refuse_common(value: str) -> None:
    # The list is lower-cased ("Password" is as common) and comma-separated (no entry holds a comma).
    if "," not in value and f",{value.lower()}," in workarounds.common_passwords():
        raise ValidationError(str(TOO_COMMON))  # in the request's language: marshmallow wants a str


def new_password_field(**metadata: Any) -> fields.String:
    return fields.String(required=True, load_only=True, validate=[length(min=8, max=128), refuse_common],
                         metadata=metadata)


def refuse_email_name(password: str, email: str, field: str) -> None:
    """The part of the address before the @ is the first guess of anyone who knows it."""
    if password.lower() == email.split("@", 1)[0].lower():
        raise ValidationError({field: [str(LIKE_EMAIL)]})


class NewPasswordForEmail(Schema):
    """A schema with an email and a new password (named PASSWORD_FIELD) that must differ from its name."""

    PASSWORD_FIELD = "password"

    @validates_schema
    def check_email_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "email" in data and self.PASSWORD_FIELD in data:
            refuse_email_name(data[self.PASSWORD_FIELD], data["email"], self.PASSWORD_FIELD)
