"""A web client in a real browser: headless Chromium with its DevTools virtual authenticator (CTAP2,
internal transport, resident keys, user verification) adds a passkey to an account through the
API, signs in with it typing nothing, and reads /me with the tokens it got."""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import Page

from tests.helpers import AUTH, PASSWORD, code_in
from tests.live import Gunicorn, OfflineBrowser

pytestmark = pytest.mark.live

# The page is the test's own, answered at the API's origin (WebAuthn wants the page and the
# relying party on one site): the service serves no such page.
PAGE = "<!doctype html><title>passkeys</title><p>a client of the API</p>"

STORY = """async (token) => {
  const call = (path, body, bearer) => fetch('/api/client/auth' + path, {
    method: 'POST', body: JSON.stringify(body || {}),
    headers: {'Content-Type': 'application/json', ...(bearer ? {Authorization: 'Bearer ' + bearer} : {})},
  }).then(answer => answer.json());
  const creation = await call('/passkeys/register/options', {}, token);
  const made = await navigator.credentials.create(
    {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(creation.data.options)});
  const added = await call('/passkeys/register/verify', {credential: made.toJSON(), name: 'Chromium'}, token);
  const request = await call('/passkeys/login/options', {});
  const asserted = await navigator.credentials.get(
    {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(request.data.options)});
  const signedIn = await call('/passkeys/login/verify', {flow_id: request.data.flow_id, credential: asserted.toJSON()});
  const me = await fetch('/api/client/auth/me', {headers: {Authorization: 'Bearer ' + signedIn.data.access_token}})
    .then(answer => answer.json());
  return {added: added.data.name, signedIn: signedIn.code, email: me.data.email};
}"""


def proven_token(server: Gunicorn, smtp, email: str) -> str:
    """Register, then prove the address with a reset (passkeys are for proven addresses)."""
    base = server.url + AUTH
    requests.post(base + "/register", json={"email": email, "password": PASSWORD}, timeout=10)
    requests.post(base + "/password/forgot", json={"email": email}, timeout=10)
    reset = requests.post(base + "/password/reset", timeout=10,
                          json={"email": email, "code": code_in(smtp.last_to(email)), "new_password": PASSWORD})
    return reset.json()["data"]["access_token"]


def test_a_browser_adds_a_passkey_and_signs_in_with_it(app, smtp, browser: OfflineBrowser, page: Page):
    server = Gunicorn(workers=1, smtp__port=smtp.port)
    origin = f"http://localhost:{server.port}"
    server.env["APP__AUTH__WEBAUTHN__ORIGINS"] = json.dumps([origin])
    with server:
        token = proven_token(server, smtp, "ada@example.com")
        page.route(f"{origin}/client", lambda route: route.fulfill(content_type="text/html", body=PAGE))
        page.goto(f"{origin}/client")
        devtools = page.context.new_cdp_session(page)
        devtools.send("WebAuthn.enable")
        devtools.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True}})
        outcome = page.evaluate(STORY, token)
    assert outcome == {"added": "Chromium", "signedIn": 10000, "email": "ada@example.com"}
    assert browser.refused == []
