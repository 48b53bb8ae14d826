"""Tokens other services can check: keys with kids, a JWKS for verifiers, a rotation that signs
no one out, and nothing a token says about its own algorithm trusted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

import codes
from tests.helpers import AUTH, PASSWORD, bearer, claims_of, login, me, refresh, register
from tests.live import ROOT, Gunicorn


def keys_cli(app, *args):
    result = app.test_cli_runner().invoke(args=["keys", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(head: dict, claims: dict, hmac_key: bytes | None) -> str:
    """A token built by hand: PyJWT itself refuses to make these."""
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{b64(mac)}"


def header(token):
    return jwt.get_unverified_header(token)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "HS256"])
def test_a_token_signed_by_each_algorithm_verifies(make_app, tmp_path, alg):
    configure = make_app(auth__jwt_keys_dir=str(tmp_path))
    kid = keys_cli(configure, "generate", "--alg", alg)
    keys_cli(configure, "promote", kid)
    client = make_app(auth__jwt_keys_dir=str(tmp_path)).test_client()  # the workers reloaded
    pair = register(client)
    assert header(pair["access_token"]) == {"alg": alg, "kid": kid, "typ": "JWT"}
    assert me(client, pair["access_token"]).status_code == 200
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_no_token_chooses_its_own_algorithm_or_key(make_app, tmp_path, app):
    configure = make_app(auth__jwt_keys_dir=str(tmp_path))
    kid = keys_cli(configure, "generate", "--alg", "EdDSA")
    keys_cli(configure, "promote", kid)
    client = make_app(auth__jwt_keys_dir=str(tmp_path)).test_client()
    claims = jwt.decode(register(client)["access_token"], options={"verify_signature": False})
    private = serialization.load_pem_private_key((tmp_path / f"{kid}.pem").read_bytes(), None)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = [
        signed({"alg": "none", "kid": kid}, claims, None),
        signed({"alg": "HS256", "kid": kid}, claims, public_pem),  # an HMAC keyed by the published key
        jwt.encode(claims, "a guess long enough for PyJWT's taste", algorithm="HS256", headers={"kid": "no-such-key"}),
    ]
    for token in forged:
        answer = me(client, token)
        assert answer.status_code == 401 and answer.get_json()["code"] == codes.AUTH_TOKEN_INVALID.code, token


def test_a_full_rotation_signs_no_one_out(make_app, tmp_path):
    settings = {"auth__jwt_keys_dir": str(tmp_path), "auth__access_token_ttl": 2, "auth__refresh_token_ttl": 2,
                "auth__refresh_grace_seconds": 0}
    before = make_app(**settings)
    first = register(before.test_client())  # the legacy HS256 key signed it
    assert header(first["access_token"])["kid"] == "legacy"

    eddsa = keys_cli(before, "generate", "--alg", "EdDSA")
    published = make_app(**settings)
    listed = published.test_client().get("/.well-known/jwks.json")
    assert [key["kid"] for key in listed.get_json()["keys"]] == [eddsa]  # published before it signs
    assert listed.headers["Cache-Control"] == "public, max-age=300"
    assert header(login(published.test_client()).get_json()["data"]["access_token"])["kid"] == "legacy"

    keys_cli(published, "promote", eddsa)
    rotated = make_app(**settings).test_client()
    assert me(rotated, first["access_token"]).status_code == 200  # the old key still verifies
    second = login(rotated).get_json()["data"]
    assert header(second["access_token"])["kid"] == eddsa

    es256 = keys_cli(published, "generate", "--alg", "ES256")
    keys_cli(published, "promote", es256)
    again = make_app(**settings)
    assert me(again.test_client(), second["access_token"]).status_code == 200  # EdDSA retired, still verifies
    refused = again.test_cli_runner().invoke(args=["keys", "drop", eddsa])
    assert refused.exit_code != 0 and "only a retired key whose tokens have all expired" in refused.output
    time.sleep(2.5)  # every token EdDSA signed has expired
    keys_cli(again, "drop", eddsa)
    dropped = make_app(**settings).test_client()
    assert [key["kid"] for key in dropped.get("/.well-known/jwks.json").get_json()["keys"]] == [es256]


def test_the_jwks_never_publishes_a_symmetric_key(make_app, tmp_path):
    configure = make_app(auth__jwt_keys_dir=str(tmp_path))
    keys_cli(configure, "promote", keys_cli(configure, "generate", "--alg", "HS256"))
    assert make_app(auth__jwt_keys_dir=str(tmp_path)).test_client().get("/.well-known/jwks.json").get_json() \
        == {"keys": []}


VERIFIER = """
import json, sys, urllib.request
from joserfc import jwt
from joserfc.jwk import KeySet
url, token = sys.argv[1], sys.argv[2]
keys = KeySet.import_key_set(json.load(urllib.request.urlopen(url + "/.well-known/jwks.json", timeout=5)))
print(jwt.decode(token, keys, algorithms=["EdDSA", "ES256"]).claims["sub"])
"""


@pytest.mark.live
def test_another_service_holding_only_the_jwks_verifies_access_tokens(app, smtp, make_app, tmp_path):
    configure = make_app(auth__jwt_keys_dir=str(tmp_path))
    keys_cli(configure, "promote", keys_cli(configure, "generate", "--alg", "EdDSA"))
    with Gunicorn(workers=1, smtp__port=smtp.port, auth__jwt_keys_dir=str(tmp_path)) as server:
        pair = requests.post(server.url + AUTH + "/register", json={"email": "ada@example.com", "password": PASSWORD},
                             timeout=10).json()["data"]
        checked = subprocess.run([sys.executable, "-c", VERIFIER, server.url, pair["access_token"]], cwd=ROOT,
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == str(pair["user"]["id"])
        assert requests.get(server.url + AUTH + "/me", headers=bearer(pair["access_token"]), timeout=5).ok


def test_a_keyset_that_lists_a_missing_key_stops_the_start(make_app, tmp_path):
    configure = make_app(auth__jwt_keys_dir=str(tmp_path))
    kid = keys_cli(configure, "generate", "--alg", "ES256")
    (tmp_path / f"{kid}.pem").unlink()
    with pytest.raises(SystemExit, match="auth.jwt_keys_dir: FileNotFoundError"):
        make_app(auth__jwt_keys_dir=str(tmp_path))


SERVICE = ("gateway", "a-secret-of-the-gateway-0123456789abcdef")


def introspect(client, token, credentials=SERVICE):
    auth = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    return client.post("/api/system/introspect", data={"token": token}, headers={"Authorization": auth})


def test_introspection_sees_a_logout_at_once_though_the_token_still_verifies(make_app):
    app = make_app(auth__introspection__clients={SERVICE[0]: SERVICE[1]})
    client = app.test_client()
    pair = register(client)
    live = introspect(client, pair["access_token"])
    assert live.status_code == 200 and live.headers["Cache-Control"] == "no-store"
    answer = live.get_json()
    assert (answer["active"], answer["sid"], answer["amr"]) == (True, claims_of(pair["access_token"])["sid"], ["pwd"])
    client.post(f"{AUTH}/logout", json={}, headers=bearer(pair["access_token"]))
    assert introspect(client, pair["access_token"]).get_json() == {"active": False}
    jwt.decode(pair["access_token"], app.config["SETTINGS"].auth.jwt_secret, algorithms=["HS256"])  # still verifies
    assert introspect(client, "not a token").get_json() == {"active": False}


def test_introspection_is_for_the_configured_services_only(make_app):
    client = make_app(auth__introspection__clients={SERVICE[0]: SERVICE[1]}).test_client()
    token = register(client)["access_token"]
    for credentials in ((SERVICE[0], "wrong"), ("someone", SERVICE[1])):
        refused = introspect(client, token, credentials)
        assert refused.status_code == 401 and refused.get_json()["code"] == codes.INTROSPECTION_CLIENT_INVALID.code
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post("/api/system/introspect", data={"token": token}).status_code == 401


