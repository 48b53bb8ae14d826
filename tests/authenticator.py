"""A software WebAuthn authenticator with a P-256 key, for the passkey stories: it answers the
options the service gives as a platform API would (the JSON of navigator.credentials.create() and
.get()), with the flags a test asks for: user verified, backed up, a counter that counts.

Written here rather than taken from soft-webauthn (fixed flags, no user verification, fido2 1.x) or
fido2's client (a full CTAP client for real devices): about sixty lines on cbor2 and cryptography,
which py_webauthn brings anyway, and every byte a test may want to bend is in reach."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    def __init__(self, origin: str, verifies_user: bool = True, synced: bool = False, counts: bool = True) -> None:
        self.origin, self.verifies_user, self.synced, self.counts = origin, verifies_user, synced, counts
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.rp_id, self.user_handle, self.sign_count = "", b"", 0

    def _flags(self) -> int:
        return UP | (UV if self.verifies_user else 0) | ((BE | BS) if self.synced else 0)

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin}).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """The answer to creation options (PublicKeyCredentialCreationOptionsJSON)."""
        self.rp_id, self.user_handle = options["rp"]["id"], unb64(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256(self.rp_id.encode()).digest() + bytes([self._flags() | AT])
                     + struct.pack(">I", 0) + bytes(16) + struct.pack(">H", len(self.credential_id))
                     + self.credential_id + cose)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"])),
                             "attestationObject": b64(attestation), "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict[str, Any], rp_id: str | None = None, sign_count: int | None = None) -> dict[str, Any]:
        """The assertion for request options (PublicKeyCredentialRequestOptionsJSON)."""
        if self.counts:
            self.sign_count += 1
        count = self.sign_count if sign_count is None else sign_count
        auth_data = (hashlib.sha256((rp_id or options["rpId"]).encode()).digest() + bytes([self._flags()])
                     + struct.pack(">I", count))
        client_data = self._client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                             "signature": b64(signature), "userHandle": b64(self.user_handle)},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}
