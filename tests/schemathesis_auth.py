"""Schemathesis hooks for tests/test_openapi_fuzz.py (SCHEMATHESIS_HOOKS=tests.schemathesis_auth):
every request carries a live token of a fuzz user, fetched again after any 401. The fuzzing itself
ends sessions (logout, a password change, DELETE /me) and may lock the user's email with wrong
passwords, so a new token comes from a login, or else from a new account."""

from __future__ import annotations

import itertools
import os

import requests
import schemathesis

from tests.helpers import AUTH, PASSWORD, bearer

_accounts = itertools.count()


@schemathesis.auth(refresh_interval=300, retry_on=[401])
class FreshToken:
    email = "fuzz@example.com"
    token = ""

    def get(self, case, context) -> str:
        """The token in use while /me still takes it (most 401s are a wrong password's, not a dead
        token's; a sign-in costs an argon2 hash), else a new one."""
        base = os.environ["FUZZ_SERVER_URL"] + AUTH
        if self.token and requests.get(base + "/me", headers=bearer(self.token), timeout=10).status_code == 200:
            return self.token
        answer = requests.post(base + "/login", json={"email": self.email, "password": PASSWORD}, timeout=10)
        if answer.status_code != 200:  # locked, or turned to two-factor by the fuzzing: another account
            FreshToken.email = f"fuzz-{next(_accounts)}-{os.getpid()}@example.com"
            answer = requests.post(base + "/register", json={"email": self.email, "password": PASSWORD}, timeout=10)
        FreshToken.token = answer.json()["data"]["access_token"]
        return self.token

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
