"""The deployment a user would copy, as far as a machine without a Docker engine can test it: the
Dockerfile's own steps run as a script, and compose.yaml's settings loaded as the app would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from config import _field_for, load_config
from tests.helpers import TEST_DB_URL, TEST_PREFIX
from tests.live import ROOT

# What a user's .env would hold for each variable compose.yaml requires.
SAMPLE_ENV = {
    "DB_PASSWORD": "a-database-password", "JWT_SECRET": "x" * 48, "SMTP_HOST": "smtp.example.com",
    "SMTP_SENDER": "Shop <no-reply@example.com>", "PUBLIC_URL": "https://api.example.com",
    "STRIPE_SECRET_KEY": "sk_live_sample", "STRIPE_WEBHOOK_SECRET": "whsec_sample",
    "STRIPE_SUCCESS_URL": "https://shop.example.com/orders/{order_no}",
    "STRIPE_CANCEL_URL": "https://shop.example.com/orders/{order_no}",
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


@pytest.mark.live
def test_the_dockerfiles_steps_install_start_and_pass_the_healthcheck_from_a_clean_tree(app):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("APP__")}
    environ.update(APP__APP__ENV="testing", APP__DATABASE__URL=TEST_DB_URL, APP__REDIS__KEY_PREFIX=TEST_PREFIX)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "scripts/container_steps.py"], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RUN: pip install -r requirements.txt" in result.stdout
    assert "RUN: pybabel compile -d translations" in result.stdout
    assert "HEALTHCHECK: python scripts/healthcheck.py: healthy" in result.stdout
    assert "stopped cleanly; every step passed" in result.stdout
    print(f"container steps: {time.monotonic() - started:.0f} s")


def interpolate(value: str, env: dict[str, str]) -> str:
    """compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, as compose fills them from .env."""
    def fill(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if name in env:
            return env[name]
        assert kind != "?", f"compose.yaml requires {name}: add it to SAMPLE_ENV"
        return rest if kind == "-" else ""

    return INTERPOLATION.sub(fill, str(value))


def test_compose_yaml_sets_only_real_settings_and_loads_in_production_with_a_filled_env():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    environment = compose["x-app"]["environment"]
    for name in environment:
        assert name.startswith("APP__") and _field_for(name[5:].lower().split("__")) is not None, name
    filled = {name: interpolate(value, SAMPLE_ENV) for name, value in environment.items()}
    config = load_config(environ=filled)  # raises on a setting production refuses
    assert config.app.env == "production" and config.payment.providers == ["stripe"]
    assert config.database.url == "mysql+pymysql://app:a-database-password@db:3306/flask_api?charset=utf8mb4"
    assert compose["services"]["app"]["ports"] == ["127.0.0.1:8000:8000"]  # for a reverse proxy on the host
    assert compose["services"]["app"]["depends_on"]["schema"] == {"condition": "service_completed_successfully"}
