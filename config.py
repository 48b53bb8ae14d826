"""Load config.yaml once, apply APP__... overrides and validate the result."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

DEFAULT_PATH = Path(__file__).with_name("config.yaml")
ENV_PREFIX = "APP__"

# Settings that must not keep their shipped value in production.
SECRETS = (
    ("auth", "jwt_secret"),
    ("smtp", "password"),
    # Not payment.dev.secret: production refuses the dev provider altogether.
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
    verify_code_per_ip = fields.String(load_default="60/minute")
    refresh_per_ip = fields.String(load_default="120/minute")


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
    email_code_max_failures = fields.Integer(load_default=10, validate=validate.Range(min=1))
    email_code_failure_window = fields.Integer(load_default=86400, validate=validate.Range(min=1))
    require_email_confirmation = fields.Boolean(load_default=False)
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
    sweep_batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10000))


class ProductSection(_Section):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))
    name = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.Length(min=1, max=128)),
                       required=True, validate=validate.Length(min=1))
    price = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))  # minor units
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    active = fields.Boolean(load_default=True)


PROVIDER_NAMES = ("dev", "stripe", "alipay")


class DevProviderSection(_Section):
    secret = fields.String(required=True, validate=validate.Length(min=8))


class StripeProviderSection(_Section):
    secret_key = fields.String(load_default="")
    webhook_secret = fields.String(load_default="")
    api_base = fields.String(load_default="https://api.stripe.com")
    success_url = fields.String(load_default="http://localhost:3000/orders/{order_no}")
    cancel_url = fields.String(load_default="http://localhost:3000/orders/{order_no}")
    timeout = fields.Float(load_default=10, validate=validate.Range(min=0.1, max=60))


class AlipayProviderSection(_Section):
    app_id = fields.String(load_default="")
    private_key = fields.String(load_default="")  # the app's RSA private key, PEM or bare base64
    public_key = fields.String(load_default="")  # Alipay's RSA public key, PEM or bare base64
    gateway = fields.String(load_default="https://openapi.alipay.com/gateway.do")
    return_url = fields.String(load_default="")


# Keys a provider cannot work without; checked only for the enabled providers.
PROVIDER_KEYS = {"dev": ("secret",), "stripe": ("secret_key", "webhook_secret"),
                 "alipay": ("app_id", "private_key", "public_key")}


class PaymentSection(_Section):
    providers = fields.List(fields.String(validate=validate.OneOf(PROVIDER_NAMES)), load_default=lambda: ["dev"],
                            validate=validate.Length(min=1))
    default = fields.String(load_default="dev")
    tolerance_seconds = fields.Integer(load_default=300, validate=validate.Range(min=1))
    notify_base_url = fields.String(load_default="http://127.0.0.1:8000")  # where providers reach this service
    dev = fields.Nested(DevProviderSection)
    stripe = fields.Nested(StripeProviderSection, load_default=lambda: StripeProviderSection().load({}))
    alipay = fields.Nested(AlipayProviderSection, load_default=lambda: AlipayProviderSection().load({}))

    @validates_schema
    def check_providers(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["default"] not in data["providers"]:
            raise ValidationError("must be one of payment.providers", field_name="default")
        for name in data["providers"]:
            section = data.get(name) or {}
            for key in PROVIDER_KEYS[name]:
                if not section.get(key):
                    raise ValidationError({key: [f"required while {name} is in payment.providers"]},
                                          field_name=name)


class ConfigSchema(_Section):
    app = fields.Nested(AppSection, required=True)
    database = fields.Nested(DatabaseSection, required=True)
    redis = fields.Nested(RedisSection, required=True)
    auth = fields.Nested(AuthSection, required=True)
    smtp = fields.Nested(SmtpSection, required=True)
    order = fields.Nested(OrderSection, load_default=dict)
    payment = fields.Nested(PaymentSection, load_default=dict)
    products = fields.List(fields.Nested(ProductSection), load_default=list)

    @validates_schema
    def check_products(self, data: dict[str, Any], **kwargs: Any) -> None:
        ids = [product["id"] for product in data.get("products", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("product ids must be unique", field_name="products")


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
    _check_production_providers(config)
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


def _check_production_providers(config: dict[str, Any]) -> None:
    # The dev provider's notifications pay orders with no money moving: for development and tests only.
    if config["app"]["env"] == "production" and "dev" in config["payment"]["providers"]:
        raise ConfigError("payment.providers: dev pays orders without money; enable stripe or alipay in production")
