"""The keys that sign and verify tokens, each with a kid, a pinned algorithm and a state.

`auth.jwt_secret` (with `auth.jwt_algorithm`) is the key "legacy": it signs while no key of the
keyset is active, and verifies tokens without a kid (those from before kids) or with its own.
The keyset proper lives in `auth.jwt_keys_dir`, written by `flask keys` (commands.py):
keyset.json lists each key, and each key's private part is a file of its own beside it:

    {"keys": [{"kid", "alg": "EdDSA" | "ES256" | "HS256", "state": "next" | "active" | "retired",
               "created_at", "retired_at"}]}     <kid>.pem (EdDSA, ES256) or <kid>.secret (HS256)

`next` keys are published (GET /.well-known/jwks.json) and verify, `active` signs (one at most),
`retired` verifies until every token it signed has expired. A token's own "alg" is never used:
each key verifies with the algorithm it was made for (RFC 8725). A worker reads the keyset at
start; after `flask keys promote`, reload gunicorn (HUP).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask, current_app

from config import ConfigError

log = logging.getLogger("flask_api.keys")
LEGACY = "legacy"
ALGORITHMS = ("EdDSA", "ES256", "HS256")
STATES = ("next", "active", "retired")
KEYSET_FILE = "keyset.json"


@dataclass(frozen=True)
class Key:
    kid: str
    alg: str
    state: str
    signing: Any = field(repr=False)  # a private key, or the secret for HS256
    verifying: Any = field(repr=False)  # its public key, or the secret again
    created_at: str = ""
    retired_at: str | None = None

    @property
    def symmetric(self) -> bool:
        return self.alg.startswith("HS")

    def public_jwk(self) -> dict[str, Any]:
        """The key as a JWK for verifiers (RFC 7517); only for an asymmetric key."""
        to_jwk = jwt.algorithms.OKPAlgorithm if self.alg == "EdDSA" else jwt.algorithms.ECAlgorithm
        return {**to_jwk.to_jwk(self.verifying, as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}


_serials = itertools.count()


@dataclass(frozen=True)
class Keyset:
    keys: dict[str, Key]
    signing: Key
    serial: int = field(default_factory=lambda: next(_serials))  # which keyset verified a cached token

    def published(self) -> list[Key]:
        return [key for key in self.keys.values() if not key.symmetric]


def init_app(app: Flask) -> None:
    """Read the keyset once, at start; a key it lists that cannot be read stops the start."""
    try:
        app.extensions["keyset"] = load(app.config["SETTINGS"].auth)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"config error: auth.jwt_keys_dir: {exc.__class__.__name__}: {exc}") from None


def reload(app: Flask) -> None:
    """Read the keyset again (a new gunicorn worker); one that cannot be read keeps what was read
    at start, and says so, rather than leave the worker unable to start."""
    try:
        app.extensions["keyset"] = load(app.config["SETTINGS"].auth)
    except (OSError, ValueError, KeyError) as exc:
        log.error("keyset not reloaded, keeping the one read at start: %s: %s", exc.__class__.__name__, exc)


def current() -> Keyset:
    return current_app.extensions["keyset"]


def load(auth: Any) -> Keyset:
    """The legacy key, and the keyset of auth.jwt_keys_dir if there is one."""
    keys = {entry["kid"]: _key(Path(auth.jwt_keys_dir), entry) for entry in read_entries(auth.jwt_keys_dir)}
    active = [key for key in keys.values() if key.state == "active"]
    legacy = Key(LEGACY, auth.jwt_algorithm, "retired" if active else "active", auth.jwt_secret, auth.jwt_secret)
    keys[LEGACY] = legacy
    return Keyset(keys, active[0] if active else legacy)


def read_entries(directory: str) -> list[dict[str, Any]]:
    path = Path(directory) / KEYSET_FILE if directory else None
    if path is None or not path.exists():
        return []
    return json.loads(path.read_text())["keys"]


def write_entries(directory: str, entries: list[dict[str, Any]]) -> None:
    """Replace keyset.json at once (a reader sees the old file or the new one, never half)."""
    path = Path(directory) / KEYSET_FILE
    partial = path.with_suffix(".json.new")
    partial.write_text(json.dumps({"keys": entries}, indent=2) + "\n")
    os.replace(partial, path)


def generate(directory: str, alg: str) -> dict[str, Any]:
    """A new key in state next: its private part written (readable by its owner only), its entry added."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    kid = f"{alg.lower()}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    if alg == "HS256":
        private, name = secrets.token_urlsafe(48).encode(), f"{kid}.secret"
    else:
        key = ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        name = f"{kid}.pem"
    descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    entry = {"kid": kid, "alg": alg, "state": "next", "created_at": datetime.now(UTC).isoformat(),
             "retired_at": None}
    write_entries(directory, [*read_entries(directory), entry])
    return entry


def _key(folder: Path, entry: dict[str, Any]) -> Key:
    kid, alg = entry["kid"], entry["alg"]
    if alg == "HS256":
        secret = (folder / f"{kid}.secret").read_text().strip()
        return Key(kid, alg, entry["state"], secret, secret, entry["created_at"], entry.get("retired_at"))
    private = serialization.load_pem_private_key((folder / f"{kid}.pem").read_bytes(), password=None)
    return Key(kid, alg, entry["state"], private, private.public_key(), entry["created_at"], entry.get("retired_at"))
