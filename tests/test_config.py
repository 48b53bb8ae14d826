"""Configuration: one file, APP__ overrides, validated once with clear messages."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import ConfigError, load_config, reference

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, **changes):
    """The shipped config.yaml with some keys changed (section__key=value) or removed (=DROP)."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is DROP:
            node.pop(key, None)
        else:
            node[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


DROP = object()


def test_shipped_config_loads_with_documented_defaults():
    config = load_config(environ={})
    assert config.database.pool_size == 20
    assert config.database.max_overflow == 40
    assert config.app.max_content_length == 1024 * 1024
    assert config.auth.access_token_ttl == 24 * 3600
    assert config.auth.refresh_token_ttl == 7 * 24 * 3600


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, database__pool_size="lots")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value.code) == "config error: database.pool_size: Not a valid integer."


def test_unknown_key_names_the_key(tmp_path):
    path = write(tmp_path, extra_section={"x": 1})
    with pytest.raises(ConfigError, match="extra_section: Unknown field"):
        load_config(path, environ={})


def test_missing_required_value_names_the_key(tmp_path):
    path = write(tmp_path, redis__url=DROP)
    with pytest.raises(ConfigError, match=r"redis\.url: Missing data for required field"):
        load_config(path, environ={})


def test_environment_overrides_parse_to_the_keys_type():
    config = load_config(environ={
        "APP__DATABASE__URL": "mysql+pymysql://u@db.example:3307/other",
        "APP__SMTP__PORT": "2525",
        "APP__APP__DEBUG": "true",
        "APP__APP__CORS_ORIGINS": "https://a.example, https://b.example",
        "APP__APP__LANGUAGES": '["zh_Hans"]',
        "APP__PAYMENT__DEV__SECRET": "another-dev-secret",
    })
    assert config.database.url == "mysql+pymysql://u@db.example:3307/other"
    assert config.smtp.port == 2525
    assert config.app.debug is True
    assert config.app.cors_origins == ["https://a.example", "https://b.example"]
    assert config.app.languages == ["zh_Hans"]
    assert config.payment.dev.secret == "another-dev-secret"


def test_bad_override_names_the_key():
    with pytest.raises(ConfigError, match=r"smtp\.port: Not a valid integer"):
        load_config(environ={"APP__SMTP__PORT": "twenty"})


def test_app_config_variable_picks_another_file(tmp_path, monkeypatch):
    path = write(tmp_path, database__pool_size=3)
    monkeypatch.setenv("APP_CONFIG", str(path))
    assert load_config().database.pool_size == 3


def test_production_refuses_development_secrets():
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret: still the development value"):
        load_config(environ={"APP__APP__ENV": "production"})


PRODUCTION = {
    "APP__APP__ENV": "production",
    "APP__AUTH__JWT_SECRET": "p" * 48,
    "APP__PAYMENT__PROVIDERS": "stripe",
    "APP__PAYMENT__DEFAULT": "stripe",
    "APP__PAYMENT__STRIPE__SECRET_KEY": "sk_live_" + "q" * 24,
    "APP__PAYMENT__STRIPE__WEBHOOK_SECRET": "whsec_" + "r" * 32,
}


def test_production_refuses_password_hashing_below_argon2s_defaults():
    with pytest.raises(ConfigError) as caught:
        load_config(environ={**PRODUCTION, "APP__AUTH__PASSWORD_HASHING__MEMORY_COST": "8192"})
    assert str(caught.value.code) == "config error: auth.password_hashing.memory_cost: at least 65536 in production"


def test_production_starts_once_every_secret_is_replaced():
    config = load_config(environ=PRODUCTION)
    assert config.app.env == "production"
    assert config.payment.providers == ["stripe"]


@pytest.mark.parametrize(("providers", "default"), [("dev", "dev"), ("stripe,dev", "stripe")])
def test_production_refuses_the_dev_provider_even_with_its_own_secret(providers, default):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={**PRODUCTION, "APP__PAYMENT__PROVIDERS": providers, "APP__PAYMENT__DEFAULT": default,
                             "APP__PAYMENT__DEV__SECRET": "s" * 32})
    assert str(caught.value.code) == ("config error: payment.providers: dev pays orders without money;"
                                      " enable stripe or alipay in production")


def test_bad_config_stops_the_cli_with_one_line_and_no_traceback(tmp_path):
    path = write(tmp_path, database__pool_size="lots")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "sync-schema", "--yes"],
                            cwd=ROOT, env={"APP_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "config error: database.pool_size: Not a valid integer." in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_are_read_by_name_and_cannot_change():
    config = load_config(environ={})
    assert config.auth.rate_limits.login_per_ip == "60/minute"
    with pytest.raises(AttributeError):
        config.auth.lockout_minuts  # noqa: B018  (a misspelt setting fails where it is read)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.auth.lockout_minutes = 0


def test_a_section_left_out_of_the_file_takes_every_default(tmp_path):
    config = load_config(write(tmp_path, order=DROP, payment={"dev": {"secret": "s" * 16}}), environ={})
    assert (config.order.expire_seconds, config.order.sweep_batch_size) == (1800, 500)
    assert config.payment.stripe.api_base == "https://api.stripe.com"


def test_the_configuration_reference_lists_every_setting_as_the_schema_defines_it():
    # docs/configuration.md is reference() as committed: regenerate it with
    # `flask --app app config-reference > docs/configuration.md` after changing a setting.
    assert reference() in (ROOT / "docs" / "configuration.md").read_text()
    assert "| `auth.lockout_minutes` | `15` |" in reference()


@pytest.mark.parametrize(("url", "without_tls"), [
    ("mysql+pymysql://app@127.0.0.1:3306/shop", True),
    ("mysql+pymysql://app@localhost/shop", True),
    ("mysql+pymysql://app@[::1]:3306/shop", True),
    ("mysql+pymysql://app@127.0.0.1/shop?ssl_ca=/etc/mysql/ca.pem", False),  # asked for: verified and required
    ("mysql+pymysql://app@db.internal:3306/shop", False),  # PyMySQL's way: TLS when the server offers it
    ("mysql+pymysql://app@10.0.0.7/shop", False),
])
def test_tls_is_left_out_only_for_a_server_on_loopback_that_the_url_asks_none_of(url, without_tls):
    from app import no_tls_needed

    assert no_tls_needed(url) is without_tls


def test_a_server_on_loopback_gets_tls_only_when_the_url_asks_for_it(make_app):
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from extensions import db
    from tests.helpers import TEST_DB_URL

    with make_app().app_context():
        raw = db.session.connection().connection.dbapi_connection
        # No TLS attempt, so no SSL context (the CA bundle: 1 MB and 20 ms) built for each connection.
        assert getattr(raw, "ctx", None) is None
        assert db.session.scalar(text("SELECT 1")) == 1
    asked = make_url(TEST_DB_URL).update_query_dict({"ssl_ca": "/etc/ssl/certs/ca-certificates.crt"})
    asking = make_app(database__url=asked.render_as_string(hide_password=False))
    # Required once asked: this server offers no TLS (or none with a certificate that bundle signed).
    with asking.app_context(), pytest.raises(OperationalError):
        db.session.execute(text("SELECT 1"))


@pytest.mark.parametrize(("origins", "refused"), [
    (["https://app.example.com", "android:apk-key-hash:Z2l2ZQ"], None),
    (["https://example.org"], "not on rp_id example.com"),
    (["http://example.com"], r"https \(http only for localhost\)"),
])
def test_passkey_origins_must_be_pages_of_the_relying_party_or_native_apps(origins, refused):
    overrides = {"auth.webauthn.rp_id": "example.com", "auth.webauthn.origins": origins}
    if refused is None:
        assert load_config(overrides=overrides).auth.webauthn.origins == origins
    else:
        with pytest.raises(ConfigError, match=refused):
            load_config(overrides=overrides)
