"""Request and response schemas of /api/client/auth/passkeys. A WebAuthn options object and a
credential are passed as the platform APIs give and take them (their JSON forms: PublicKey-
CredentialCreationOptionsJSON, RegistrationResponseJSON, ...), and checked by py_webauthn."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import Schema, fields

from schemas.auth import device_field
from schemas.common import Timestamp, length

CREDENTIAL = {"description": "what navigator.credentials.create()/.get() answered, as JSON (toJSON())"}


def credential_field() -> fields.Dict:
    return fields.Dict(required=True, load_only=True, metadata=CREDENTIAL)


def name_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=length(min=1, max=64), metadata={"description": "the user's name for it"},
                         **kwargs)


class PasskeyOptionsSchema(Schema):
    options = fields.Dict(metadata={"description": "for navigator.credentials.create({publicKey}), or the "
                                                   "platform's passkey API; the challenge works once, 5 minutes"})


class PasskeyAddSchema(Schema):
    credential = credential_field()
    name = name_field(load_default="Passkey")


class PasskeyRenameSchema(Schema):
    name = name_field(required=True)


class TransportsField(fields.Field):
    """The JSON list kept in the row, as a list."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> list[str]:
        return json.loads(value or "[]")


class PasskeySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    created_at = Timestamp()
    last_used_at = Timestamp(allow_none=True)
    backed_up = fields.Boolean(metadata={"description": "synced between the user's devices"})
    transports = TransportsField(metadata={"description": "how the device reaches it: internal, hybrid, usb, ..."})
    aaguid = fields.String(metadata={"description": "the authenticator's model"})


class PasskeyListSchema(Schema):
    items = fields.List(fields.Nested(PasskeySchema))


class PasskeySignInChallengeSchema(Schema):
    flow_id = fields.String(metadata={"description": "send it back with the assertion"})
    options = fields.Dict(metadata={"description": "for navigator.credentials.get({publicKey})"})


class PasskeySignInSchema(Schema):
    flow_id = fields.String(required=True, validate=length(min=1, max=64))
    credential = credential_field()
    device_id = device_field()


class SecondStepOptionsSchema(Schema):
    mfa_token = fields.String(required=True, load_only=True, validate=length(min=1, max=4096))
