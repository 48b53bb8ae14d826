"""The passkey factor: a WebAuthn credential's assertion proves "hwk" (a key kept on one device)
or "swk" (a synced, backed-up one), and "pin" when the authenticator verified its user (a PIN or
a biometric: WebAuthn does not say which). py_webauthn checks every ceremony; nothing here parses
CBOR or COSE. Challenges live in Redis (store/passkey_challenges.py), each answered once."""

from __future__ import annotations

import json
import secrets
from typing import Any

import webauthn
from sqlalchemy import select
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

import codes
from config import settings
from errors import ApiError
from extensions import db
from models import PasskeyModel, UserModel
from models.base import utcnow
from services import audit
from store import passkey_challenges
from store.passkey_challenges import REGISTRATION, SECOND_STEP, SIGN_IN

# What a malformed credential raises inside py_webauthn besides its own errors (bad base64, a
# field of the wrong type): each is the client's mistake, answered 400.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, IndexError)
MAX_CREDENTIAL_ID = 1023  # bytes: WebAuthn's bound, and the column's
TRANSPORTS = frozenset({"ble", "hybrid", "internal", "nfc", "smart-card", "usb"})  # WebAuthn's AuthenticatorTransport


def user_handle(user_id: int) -> bytes:
    """What the authenticator keeps as the account: the id, never the email."""
    return str(user_id).encode()


def registration_options(user: UserModel) -> dict[str, Any]:
    """Creation options for a new passkey of the user's: resident key required, user verification
    preferred, the keys already registered excluded."""
    rp = settings.auth.webauthn
    options = webauthn.generate_registration_options(
        rp_id=rp.rp_id, rp_name=rp.rp_name, user_id=user_handle(user.id), user_name=user.email,
        user_display_name=user.nickname or user.email, timeout=passkey_challenges.TTL * 1000,
        exclude_credentials=[PublicKeyCredentialDescriptor(id=key.credential_id) for key in of_user(user.id)],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.PREFERRED))
    passkey_challenges.keep(REGISTRATION(user.id), options.challenge)
    return json.loads(webauthn.options_to_json(options))


def register(user: UserModel, credential: dict[str, Any], name: str) -> PasskeyModel:
    """Verify the authenticator's answer to the user's pending options and keep the key (flushed)."""
    challenge = _taken(REGISTRATION(user.id))
    rp = settings.auth.webauthn
    try:
        verified = webauthn.verify_registration_response(credential=credential, expected_challenge=challenge,
                                                         expected_rp_id=rp.rp_id, expected_origin=rp.origins)
    except MALFORMED:
        raise ApiError(codes.PASSKEY_INVALID) from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        raise ApiError(codes.PASSKEY_INVALID)
    if db.session.scalar(select(PasskeyModel.id).where(PasskeyModel.credential_id == verified.credential_id)):
        raise ApiError(codes.PASSKEY_EXISTS)
    response = credential.get("response")
    said = response.get("transports") if isinstance(response, dict) else None
    transports = sorted(set(said) & TRANSPORTS) if isinstance(said, list) else []
    key = PasskeyModel(user_id=user.id, credential_id=verified.credential_id, name=name,
                       public_key=verified.credential_public_key, sign_count=verified.sign_count,
                       transports=json.dumps(transports), aaguid=str(verified.aaguid),
                       backed_up=verified.credential_backed_up)
    db.session.add(key)
    db.session.flush()
    return key


def sign_in_options() -> dict[str, Any]:
    """Request options for an anonymous sign-in, naming no key: every passkey here is discoverable
    (registration asks for a resident key), so the device offers this site's and the user picks
    one. Naming an email's keys would tell whoever asks whether it has an account, and its ids."""
    flow_id = secrets.token_urlsafe(16)
    options = _request_options([])
    passkey_challenges.keep(SIGN_IN(flow_id), base64url_to_bytes(options["challenge"]))
    return {"flow_id": flow_id, "options": options}


def owner_of(credential: dict[str, Any]) -> int:
    """The user whose passkey the credential names (read without a lock: the caller locks the
    user's row first, then sign_in the key's, in the order every other path takes)."""
    return _key_of(credential, lock=False).user_id


def sign_in(flow_id: str, user_id: int, credential: dict[str, Any]) -> set[str]:
    """What the user's passkey proved by answering the flow's challenge."""
    challenge = _taken(SIGN_IN(flow_id))
    key = _key_of(credential)
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    if key.user_id != user_id or (handle and _decoded(handle) != user_handle(user_id)):
        raise ApiError(codes.PASSKEY_INVALID)
    return _verify(key, credential, challenge)


def second_step_options(user_id: int, jti: str) -> dict[str, Any]:
    """Request options naming the user's keys, bound to an open two-factor challenge (its jti)."""
    keys = [key.credential_id for key in of_user(user_id)]
    if not keys:
        raise ApiError(codes.PASSKEY_NOT_FOUND)
    options = _request_options(keys)
    passkey_challenges.keep(SECOND_STEP(user_id, jti), base64url_to_bytes(options["challenge"]))
    return options


def prove_second_step(user_id: int, jti: str, credential: dict[str, Any]) -> set[str]:
    """What a passkey of the user's proves for the two-factor challenge jti."""
    challenge = _taken(SECOND_STEP(user_id, jti))
    key = _key_of(credential)
    if key.user_id != user_id:
        raise ApiError(codes.PASSKEY_INVALID)
    return _verify(key, credential, challenge)


def has_any(user_id: int) -> bool:
    return db.session.scalar(select(PasskeyModel.id).where(PasskeyModel.user_id == user_id).limit(1)) is not None


def of_user(user_id: int) -> list[PasskeyModel]:
    return list(db.session.scalars(select(PasskeyModel).where(PasskeyModel.user_id == user_id)
                                   .order_by(PasskeyModel.id)))


def owned(user_id: int, passkey_id: int) -> PasskeyModel:
    """One of the user's passkeys, locked; another user's answers like a missing one."""
    key = db.session.scalar(select(PasskeyModel).where(PasskeyModel.id == passkey_id,
                                                       PasskeyModel.user_id == user_id).with_for_update())
    if key is None:
        raise ApiError(codes.PASSKEY_NOT_FOUND)
    return key


def _request_options(allowed: list[bytes]) -> dict[str, Any]:
    options = webauthn.generate_authentication_options(
        rp_id=settings.auth.webauthn.rp_id, timeout=passkey_challenges.TTL * 1000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=credential_id) for credential_id in allowed],
        user_verification=UserVerificationRequirement.PREFERRED)
    return json.loads(webauthn.options_to_json(options))


def _taken(key: str) -> bytes:
    challenge = passkey_challenges.take(key)
    if challenge is None:
        raise ApiError(codes.PASSKEY_CHALLENGE_EXPIRED)
    return challenge


def _decoded(text: Any) -> bytes:
    try:
        return base64url_to_bytes(text)
    except MALFORMED:
        raise ApiError(codes.PASSKEY_INVALID) from None


def _key_of(credential: dict[str, Any], lock: bool = True) -> PasskeyModel:
    """The stored key the credential names, locked unless asked not to (its counter is read and
    written here)."""
    credential_id = _decoded(credential.get("rawId") or credential.get("id") or "")
    statement = select(PasskeyModel).where(PasskeyModel.credential_id == credential_id)
    key = db.session.scalar(statement.with_for_update() if lock else statement)
    if key is None:  # never registered, or removed
        raise ApiError(codes.PASSKEY_INVALID)
    return key


def _verify(key: PasskeyModel, credential: dict[str, Any], challenge: bytes) -> set[str]:
    """Check the assertion against the stored key; a counter that went backwards for a key that
    counts (a cloned authenticator) is refused and recorded."""
    rp = settings.auth.webauthn
    try:
        # The counter is compared below, where a regression can be recorded: 0 skips the library's.
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.rp_id,
            expected_origin=rp.origins, credential_public_key=key.public_key, credential_current_sign_count=0)
    except MALFORMED:
        raise ApiError(codes.PASSKEY_INVALID) from None
    if key.sign_count and verified.new_sign_count <= key.sign_count:
        audit.record_now("passkey_counter_regression", key.user_id, passkey=key.id)
        raise ApiError(codes.PASSKEY_INVALID)
    key.sign_count, key.last_used_at = verified.new_sign_count, utcnow()
    key.backed_up = verified.credential_backed_up
    return {"swk" if verified.credential_backed_up else "hwk"} | ({"pin"} if verified.user_verified else set())
