"""No expired, forged, tampered or mistyped token gets in, and each is told why."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace

import jwt
import pytest

import codes
from tests.helpers import bearer, claims_of

ME = "/api/client/auth/me"


def segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_refused(client, token, code):
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["code"] == code.code
    return response


def test_no_header_is_missing(client):
    response = client.get(ME)
    assert response.status_code == 401
    assert response.get_json()["code"] == codes.AUTH_TOKEN_MISSING.code


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token-without-scheme",
                                    "Bearer " + "a" * 5000])
def test_malformed_headers_are_invalid(client, header):
    response = client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["code"] == codes.AUTH_TOKEN_INVALID.code


def test_an_expired_token_is_refused_as_expired(make_app):
    app = make_app(auth__access_token_ttl=1)
    client = app.test_client()
    token = client.post("/api/client/auth/register", json={
        "email": "short@example.com", "password": "a long unusual one"}).get_json()["data"]["access_token"]
    assert client.get(ME, headers=bearer(token)).status_code == 200
    time.sleep(2.1)
    assert_refused(client, token, codes.AUTH_TOKEN_EXPIRED)


def test_a_token_signed_with_another_key_is_invalid(client, user):
    forged = jwt.encode(claims_of(user["access_token"]), "another-key-of-sufficient-length!", algorithm="HS256")
    assert_refused(client, forged, codes.AUTH_TOKEN_INVALID)


def test_alg_none_is_invalid(client, user):
    unsigned = f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims_of(user['access_token']))}."
    assert_refused(client, unsigned, codes.AUTH_TOKEN_INVALID)


def test_an_empty_key_or_another_algorithm_is_invalid(client, user):
    hs512 = jwt.encode(claims_of(user["access_token"]), "x" * 64, algorithm="HS512")
    assert_refused(client, hs512, codes.AUTH_TOKEN_INVALID)
    header, payload, _ = user["access_token"].split(".")
    assert_refused(client, f"{header}.{payload}.", codes.AUTH_TOKEN_INVALID)


def test_a_tampered_payload_is_invalid(client, user):
    header, _, signature = user["access_token"].split(".")
    claims = claims_of(user["access_token"]) | {"sub": "999999"}
    assert_refused(client, f"{header}.{segment(claims)}.{signature}", codes.AUTH_TOKEN_INVALID)


def test_a_refresh_token_is_not_an_access_token(client, user):
    assert_refused(client, user["refresh_token"], codes.AUTH_TOKEN_INVALID)


def test_an_access_token_is_not_a_refresh_token(client, user):
    response = client.post("/api/client/auth/refresh", json={"refresh_token": user["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["code"] == codes.AUTH_TOKEN_INVALID.code


@pytest.mark.parametrize("missing", ["sid", "jti", "typ", "exp"])
def test_a_validly_signed_token_missing_a_claim_is_invalid(app, client, user, missing):
    claims = claims_of(user["access_token"])
    del claims[missing]
    token = jwt.encode(claims, app.config["SETTINGS"].auth.jwt_secret, algorithm="HS256")
    assert_refused(client, token, codes.AUTH_TOKEN_INVALID)


def test_a_validly_signed_token_that_was_never_issued_is_revoked(app, client, user):
    claims = claims_of(user["access_token"]) | {"jti": "made-up"}
    token = jwt.encode(claims, app.config["SETTINGS"].auth.jwt_secret, algorithm="HS256")
    assert_refused(client, token, codes.AUTH_TOKEN_REVOKED)


def test_a_token_signed_with_an_empty_key_is_invalid(client, user):
    # PyJWT will not sign with an empty key, so sign by hand as an attacker would.
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims_of(user['access_token']))}"
    mac = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert_refused(client, forged, codes.AUTH_TOKEN_INVALID)


def test_a_token_with_extra_claims_that_was_never_issued_is_refused(app, client, user):
    claims = claims_of(user["access_token"]) | {"role": "admin", "jti": "extra"}
    token = jwt.encode(claims, app.config["SETTINGS"].auth.jwt_secret, algorithm="HS256")
    assert_refused(client, token, codes.AUTH_TOKEN_REVOKED)


def test_a_refresh_token_from_before_generations_were_counted_still_rotates(app, client, user):
    """Tokens signed before the gen claim existed count as generation 0 of their session."""
    from services import tokens
    from store import sessions

    with app.app_context():
        issued = tokens.issue_pair(user["id"], ["pwd"], int(time.time()))
        legacy_claims = {key: value for key, value in claims_of(issued.refresh_token).items() if key != "gen"}
        legacy = jwt.encode(legacy_claims, app.config["SETTINGS"].auth.jwt_secret, algorithm="HS256")
        sessions.store_issued(user["id"], replace(issued, refresh_token=legacy), 5, 3600)
    rotated = client.post("/api/client/auth/refresh", json={"refresh_token": legacy})
    assert rotated.status_code == 200
    assert claims_of(rotated.get_json()["data"]["refresh_token"])["gen"] == 1
