"""Schemathesis drives every operation in /api/openapi.json against a live server:
no 5xx, every response as documented, every error the envelope."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

from tests.helpers import PASSWORD
from tests.live import BIN, ROOT, Gunicorn

pytestmark = pytest.mark.live

LOGOUT = "/api/client/auth/logout"
# positive_data_acceptance expects schema-valid input to succeed, but a well-formed login
# or code for an unknown account is rightly refused; every other check runs.
EXCLUDED_CHECKS = "positive_data_acceptance"


@pytest.fixture(scope="module")
def server(app, smtp):
    unlimited = "1000000/minute"
    with Gunicorn(smtp__port=smtp.port, auth__email_code_resend_seconds=0,
                  auth__rate_limits__login_per_ip=unlimited, auth__rate_limits__login_per_email=unlimited,
                  auth__rate_limits__send_code_per_ip=unlimited,
                  auth__rate_limits__send_code_per_email=unlimited) as live:
        yield live


def fresh_token(server) -> str:
    response = requests.post(server.url + "/api/client/auth/login",
                             json={"email": "fuzz@example.com", "password": PASSWORD})
    if response.status_code != 200:
        response = requests.post(server.url + "/api/client/auth/register",
                                 json={"email": "fuzz@example.com", "password": PASSWORD})
    return response.json()["data"]["access_token"]


def schemathesis(server, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [str(BIN / "schemathesis"), "run", server.url + "/api/openapi.json", "--checks", "all",
         "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", "25", "--seed", "20261125",
         "-H", f"Authorization: Bearer {fresh_token(server)}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    generated = re.search(r"(\d+) generated", result.stdout)
    return result.returncode, result.stdout, int(generated.group(1)) if generated else 0


def test_every_operation_but_logout_conforms(server):
    code, output, cases = schemathesis(server, "--exclude-path", LOGOUT)
    print(f"schemathesis: {cases} cases")
    assert code == 0, output[-8000:]
    assert cases > 200


def test_logout_conforms_with_a_token_of_its_own(server):
    code, output, cases = schemathesis(server, "--include-path", LOGOUT)
    print(f"schemathesis (logout): {cases} cases")
    assert code == 0, output[-8000:]
    assert cases > 0
