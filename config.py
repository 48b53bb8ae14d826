"""Load config.yaml once, apply APP__... overrides and validate the result."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate

DEFAULT_PATH = Path(__file__).with_name("config.yaml")
ENV_PREFIX = "APP__"

# Settings that must not keep their shipped value in production.
SECRETS = (
    ("auth", "jwt_secret"),
    ("smtp", "password"),
    ("payment", "dev", "secret"),
    ("payment", "stripe", "secret_key"),
    ("payment", "stripe", "webhook_secret"),
    ("payment", "alipay", "private_key"),
)


class ConfigError(SystemExit):
    """A bad configuration: stops the start with one message and no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(f"config error: {message}")


class _Section(Schema):
    class Meta:
        unknown = RAISE


class AppSection(_Section):
    env = fields.String(required=True, validate=validate.OneOf(["development", "testing", "production"]))
    debug = fields.Boolean(load_default=False)
    default_language = fields.String(required=True)
    languages = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    cors_origins = fields.List(fields.String(), load_default=list)
    max_content_length = fields.Integer(load_default=1024 * 1024, validate=validate.Range(min=1024))
    trusted_proxies = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10))
    log_level = fields.String(load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))


class DatabaseSection(_Section):
    url = fields.String(required=True)
    pool_size = fields.Integer(load_default=20, validate=validate.Range(min=1))
    max_overflow = fields.Integer(load_default=40, validate=validate.Range(min=0))
    pool_recycle = fields.Integer(load_default=3600)
    pool_pre_ping = fields.Boolean(load_default=True)
    pool_timeout = fields.Float(load_default=5, validate=validate.Range(min=0.1))
    connect_timeout = fields.Integer(load_default=2, validate=validate.Range(min=1))
    read_timeout = fields.Integer(load_default=10, validate=validate.Range(min=1))


class RedisSection(_Section):
    url = fields.String(required=True)
    key_prefix = fields.String(load_default="")
    socket_timeout = fields.Float(load_default=1.0, validate=validate.Range(min=0.05))
    socket_connect_timeout = fields.Float(load_default=1.0, validate=validate.Range(min=0.05))
    cluster = fields.Boolean(load_default=False)


class RateLimitsSection(_Section):
    login_per_email = fields.String(load_default="10/minute")
    login_per_ip = fields.String(load_default="60/minute")
    send_code_per_email = fields.String(load_default="5/hour")
    send_code_per_ip = fields.String(load_default="30/hour")
    verify_code_per_email = fields.String(load_default="10/minute")


class AuthSection(_Section):
    jwt_secret = fields.String(required=True, validate=validate.Length(min=16))
    jwt_algorithm = fields.String(load_default="HS256", validate=validate.OneOf(["HS256", "HS384", "HS512"]))
    access_token_ttl = fields.Integer(load_default=86400, validate=validate.Range(min=1))
    refresh_token_ttl = fields.Integer(load_default=604800, validate=validate.Range(min=1))
    refresh_grace_seconds = fields.Integer(load_default=30, validate=validate.Range(min=0))
    max_sessions_per_user = fields.Integer(load_default=10, validate=validate.Range(min=1))
    max_failed_logins = fields.Integer(load_default=5, validate=validate.Range(min=1))
    lockout_minutes = fields.Float(load_default=15, validate=validate.Range(min=0))
    email_code_ttl = fields.Integer(load_default=300, validate=validate.Range(min=1))
    email_code_resend_seconds = fields.Integer(load_default=60, validate=validate.Range(min=0))
    email_code_max_attempts = fields.Integer(load_default=5, validate=validate.Range(min=1))
    rate_limits = fields.Nested(RateLimitsSection, load_default=dict)


class SmtpSection(_Section):
    host = fields.String(required=True)
    port = fields.Integer(required=True, validate=validate.Range(min=1, max=65535))
    username = fields.String(load_default="")
    password = fields.String(load_default="")
    security = fields.String(load_default="none", validate=validate.OneOf(["none", "starttls", "ssl"]))
    sender = fields.String(required=True)
    timeout = fields.Float(load_default=5, validate=validate.Range(min=0.1))


class OrderSection(_Section):
    expire_seconds = fields.Integer(load_default=1800, validate=validate.Range(min=1))
    idempotency_ttl = fields.Integer(load_default=86400, validate=validate.Range(min=86400))


class DevProviderSection(_Section):
    secret = fields.String(required=True, validate=validate.Length(min=8))


class PaymentSection(_Section):
    providers = fields.List(fields.String(), load_default=lambda: ["dev"])
    default = fields.String(load_default="dev")
    tolerance_seconds = fields.Integer(load_default=300, validate=validate.Range(min=1))
    dev = fields.Nested(DevProviderSection)


class ConfigSchema(_Section):
    app = fields.Nested(AppSection, required=True)
    database = fields.Nested(DatabaseSection, required=True)
    redis = fields.Nested(RedisSection, required=True)
    auth = fields.Nested(AuthSection, required=True)
    smtp = fields.Nested(SmtpSection, required=True)
    order = fields.Nested(OrderSection, load_default=dict)
    payment = fields.Nested(PaymentSection, load_default=dict)


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read the YAML file, apply environment and explicit overrides, validate."""
    path = Path(path or os.environ.get("APP_CONFIG") or DEFAULT_PATH)
    raw = _read_yaml(path)
    _apply_environ(raw, os.environ if environ is None else environ)
    for dotted, value in (overrides or {}).items():
        _set(raw, dotted.split("."), value)
    try:
        config = ConfigSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc.messages)) from None
    _check_production_secrets(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _apply_environ(raw: dict[str, Any], environ: dict[str, str]) -> None:
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            keys = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
            _set(raw, keys, _parse_env_value(_field_for(keys), value))


def _field_for(keys: list[str]) -> fields.Field | None:
    """The schema field an override targets, to parse the text to its type."""
    schema: Schema = ConfigSchema()
    field = None
    for key in keys:
        field = schema.fields.get(key) if schema is not None else None
        schema = field.schema if isinstance(field, fields.Nested) else None
    return field


def _parse_env_value(field: fields.Field | None, value: str) -> Any:
    if isinstance(field, fields.List):
        if value.lstrip().startswith("["):
            return _json(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(field, (fields.Nested, fields.Dict)):
        return _json(value)
    return value  # marshmallow converts text to int, float and bool itself


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # left for validation to reject with the key's name


def _set(raw: dict[str, Any], keys: list[str], value: Any) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _first_error(messages: Any, path: str = "") -> str:
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        return _first_error(inner, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], path)
    return f"{path}: {messages}"


def _get(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(config, dict) or key not in config:
            return None
        config = config[key]
    return config


def _check_production_secrets(config: dict[str, Any]) -> None:
    if config["app"]["env"] != "production":
        return
    shipped = _read_yaml(DEFAULT_PATH)
    for keys in SECRETS:
        value = _get(config, keys)
        if value and value == _get(shipped, keys):
            name = ENV_PREFIX + "__".join(k.upper() for k in keys)
            raise ConfigError(f"{'.'.join(keys)}: still the development value; set {name} in production")
    if len(config["auth"]["jwt_secret"]) < 32:
        raise ConfigError("auth.jwt_secret: use at least 32 characters in production")
