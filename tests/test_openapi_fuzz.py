"""Schemathesis drives every operation in /api/openapi.json against a live server:
no 5xx, every response as documented, every error the envelope."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.live import BIN, ROOT, Gunicorn

pytestmark = pytest.mark.live

LOGOUT = "/api/client/auth/logout"


@pytest.fixture(scope="module")
def server(app, smtp):
    unlimited = "1000000/minute"
    with Gunicorn(smtp__port=smtp.port, auth__email_code_resend_seconds=0,
                  auth__rate_limits__login_per_ip=unlimited, auth__rate_limits__login_per_email=unlimited,
                  auth__rate_limits__send_code_per_ip=unlimited,
                  auth__rate_limits__send_code_per_email=unlimited) as live:
        yield live


def schemathesis(server, *args: str) -> tuple[int, str, int]:
    """Every check on (tests/schemathesis.toml says which refusals of valid input are right), with
    a live token on every request, fetched again after any 401 (tests/schemathesis_auth.py)."""
    result = subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", "tests/schemathesis.toml", "run",
         server.url + "/api/openapi.json", "--checks", "all", "--max-examples", "25", "--seed", "20261125", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_auth", "FUZZ_SERVER_URL": server.url})
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
