"""What a passkey ceremony costs the server, beside a password's argon2: µs per verify, in process.

    .venv/bin/python bench/passkey_cost.py      (PASSKEY_COST_ROUNDS, default 300)

py_webauthn's registration and authentication verify (an ES256 key, attestation "none", the
software authenticator of the tests), against argon2id at the production parameters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import webauthn
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.micro import per_call_us  # noqa: E402
from tests.authenticator import Authenticator, unb64  # noqa: E402

ORIGIN, RP_ID = "https://example.com", "example.com"


def main() -> None:
    rounds = int(os.environ.get("PASSKEY_COST_ROUNDS", "300"))
    device = Authenticator(ORIGIN)
    creation = webauthn.generate_registration_options(rp_id=RP_ID, rp_name="bench", user_id=b"1", user_name="a")
    options = {"challenge": webauthn.helpers.bytes_to_base64url(creation.challenge), "rp": {"id": RP_ID},
               "user": {"id": "MQ"}}
    made = device.create(options)
    registered = webauthn.verify_registration_response(credential=made, expected_challenge=creation.challenge,
                                                       expected_rp_id=RP_ID, expected_origin=ORIGIN)
    register_us = per_call_us(lambda: webauthn.verify_registration_response(
        credential=made, expected_challenge=creation.challenge, expected_rp_id=RP_ID, expected_origin=ORIGIN), rounds)
    assertion = device.get({"challenge": options["challenge"], "rpId": RP_ID})
    login_us = per_call_us(lambda: webauthn.verify_authentication_response(
        credential=assertion, expected_challenge=unb64(options["challenge"]), expected_rp_id=RP_ID,
        expected_origin=ORIGIN, credential_public_key=registered.credential_public_key,
        credential_current_sign_count=0), rounds)
    hasher = PasswordHasher()  # argon2-cffi's defaults: the production parameters (config.py)
    hashed = hasher.hash("correct horse battery")
    argon2_us = per_call_us(lambda: hasher.verify(hashed, "correct horse battery"), max(10, rounds // 30))
    print(f"registration verify  {register_us:9.0f} µs")
    print(f"sign-in verify       {login_us:9.0f} µs")
    print(f"argon2id verify      {argon2_us:9.0f} µs  ({argon2_us / login_us:.0f}x a passkey sign-in)")


if __name__ == "__main__":
    main()
