"""What signing and verifying a token costs per algorithm of the keyset, in µs, in process:

    .venv/bin/python bench/token_cost.py      (TOKEN_COST_ROUNDS, default 2000)

An access token's signature is verified once per worker and remembered (blueprints/
user_dependencies.py), so on the hot path (/me, a status read) this is paid once per token and
worker; a sign-in or a refresh signs two tokens."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.micro import per_call_us  # noqa: E402

CLAIMS = {"sub": "1", "typ": "access", "jti": "x" * 22, "sid": "s" * 16, "iat": 1, "exp": 2**40,
          "amr": ["pwd"], "auth_time": 1}


def main() -> None:
    rounds = int(os.environ.get("TOKEN_COST_ROUNDS", "2000"))
    secret = "s" * 48
    eddsa, es256 = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    for alg, signing, verifying in (("HS256", secret, secret), ("EdDSA", eddsa, eddsa.public_key()),
                                    ("ES256", es256, es256.public_key())):
        token = jwt.encode(CLAIMS, signing, algorithm=alg, headers={"kid": "k"})
        sign = per_call_us(partial(jwt.encode, CLAIMS, signing, algorithm=alg, headers={"kid": "k"}), rounds)
        verify = per_call_us(partial(jwt.decode, token, verifying, algorithms=[alg]), rounds)
        print(f"{alg:6} sign {sign:7.1f} µs   verify {verify:7.1f} µs")


if __name__ == "__main__":
    main()
