"""Load config.yaml once, apply APP__... overrides and validate the result."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml
from flask import current_app
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema
from marshmallow import missing as marshmallow_missing
from werkzeug.local import LocalProxy

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
    """A section of the file: unknown keys refused, loaded into a frozen object with one attribute
    per field, so that code reads settings.auth.lockout_minutes and a misspelt name fails loudly."""

    class Meta:
        unknown = RAISE

    @post_load
    def freeze(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return _frozen_type(type(self))(**data)


@cache
def _frozen_type(schema_cls: type[Schema]) -> type:
    # Generated from the schema, so that each setting and its default are written once, there.
    name = schema_cls.__name__.removesuffix("Section").removesuffix("Schema") + "Settings"
    return dataclasses.make_dataclass(name, [(key, Any, dataclasses.field(default=None))
                                             for key in schema_cls._declared_fields], frozen=True)


def _section(schema_cls: type[_Section]) -> fields.Nested:
    """A nested section that may be left out of the file: then every key takes its default."""
    return fields.Nested(schema_cls, load_default=lambda: schema_cls().load({}))


def _doc(text: str) -> dict[str, Any]:
    return {"metadata": {"doc": text}}


def _network(value: str) -> None:
    try:
        ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValidationError(f"not a network in CIDR notation: {exc}") from None


class AppSection(_Section):
    env = fields.String(required=True, validate=validate.OneOf(["development", "testing", "production"]),
                        **_doc("`production` refuses development secrets and the dev provider"))
    debug = fields.Boolean(load_default=False, **_doc("Flask's debug mode"))
    default_language = fields.String(load_default="en", **_doc("answers' language when the request asks none"))
    languages = fields.List(fields.String(), load_default=lambda: ["en", "zh_Hans"], validate=validate.Length(min=1),
                            **_doc("languages answered, each with a catalog in translations/"))
    cors_origins = fields.List(fields.String(), load_default=list, **_doc("browser origins allowed to call /api/*"))
    max_content_length = fields.Integer(load_default=1024 * 1024, validate=validate.Range(min=1024),
                                        **_doc("bytes; a larger body answers 413"))
    trusted_proxies = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10),
                                     **_doc("X-Forwarded-For hops to trust (ProxyFix) for the client address"))
    log_level = fields.String(load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
                              **_doc("level of the JSON log lines"))
    metrics = fields.Boolean(load_default=False,
                             **_doc("serve Prometheus metrics at /api/system/metrics ([metrics](metrics.md)); "
                                    "off: nothing is counted"))
    metrics_allow = fields.List(fields.String(validate=_network), load_default=lambda: ["127.0.0.1/32", "::1/128"],
                                **_doc("client networks (CIDR, after trusted_proxies) that may read the metrics; "
                                       "others get 404"))


class DatabaseSection(_Section):
    url = fields.String(required=True, **_doc("SQLAlchemy URL, `mysql+pymysql://user:pw@host:3306/db?charset=utf8mb4`; "
                                               "`ssl_ca=` (and `ssl_cert=`, `ssl_key=`) in the query: TLS, "
                                               "verified and required; without: none to a server on "
                                               "loopback, else TLS whenever the server offers it"))
    pool_size = fields.Integer(load_default=20, validate=validate.Range(min=1),
                               **_doc("connections each worker keeps open"))
    max_overflow = fields.Integer(load_default=40, validate=validate.Range(min=0),
                                  **_doc("connections opened beyond pool_size under load"))
    pool_recycle = fields.Integer(load_default=3600, **_doc("seconds after which a connection is replaced"))
    pool_pre_ping = fields.Boolean(load_default=True, **_doc("test a pooled connection before using it"))
    pool_timeout = fields.Float(load_default=5, validate=validate.Range(min=0.1),
                                **_doc("seconds to wait for a free connection before answering 503"))
    connect_timeout = fields.Integer(load_default=2, validate=validate.Range(min=1), **_doc("seconds"))
    read_timeout = fields.Integer(load_default=10, validate=validate.Range(min=1),
                                  **_doc("seconds per statement (and per write)"))


class RedisSection(_Section):
    url = fields.String(required=True, **_doc("`redis://host:6379/0`; with cluster, any node"))
    key_prefix = fields.String(load_default="", **_doc("put before every key, so that apps can share a Redis"))
    socket_timeout = fields.Float(load_default=1.0, validate=validate.Range(min=0.05), **_doc("seconds"))
    socket_connect_timeout = fields.Float(load_default=1.0, validate=validate.Range(min=0.05), **_doc("seconds"))
    cluster = fields.Boolean(load_default=False, **_doc("talk to a Redis Cluster"))


class RateLimitsSection(_Section):
    login_per_email = fields.String(load_default="10/minute", **_doc("password logins per address"))
    login_per_ip = fields.String(load_default="60/minute",
                                 **_doc("password and code checks per client address, all routes together"))
    send_code_per_email = fields.String(load_default="5/hour",
                                        **_doc("codes mailed per address to one client address, all purposes"))
    send_code_per_email_any_ip = fields.String(load_default="15/hour",
                                               **_doc("codes mailed per address, every client address together"))
    send_code_per_ip = fields.String(load_default="30/hour",
                                     **_doc("codes mailed per client address, all purposes together"))
    refresh_per_ip = fields.String(load_default="120/minute", **_doc("refreshes per client address"))
    introspect_per_ip = fields.String(load_default="1200/minute", **_doc("introspections per client address"))


class PasswordHashingSection(_Section):
    # argon2-cffi's defaults (RFC 9106's second choice); production refuses less.
    time_cost = fields.Integer(load_default=3, validate=validate.Range(min=1), **_doc("argon2id passes"))
    memory_cost = fields.Integer(load_default=65536, validate=validate.Range(min=8), **_doc("argon2id KiB"))
    parallelism = fields.Integer(load_default=4, validate=validate.Range(min=1), **_doc("argon2id lanes"))


NATIVE_ORIGINS = ("android:apk-key-hash:", "ios:bundle-id:")  # what native apps' platform APIs send as origin


class WebAuthnSection(_Section):
    rp_id = fields.String(load_default="localhost", validate=validate.Length(min=1, max=253),
                          **_doc("the relying party: the domain passkeys belong to"))
    rp_name = fields.String(load_default="Flask API", validate=validate.Length(min=1, max=64),
                            **_doc("the name an authenticator shows"))
    origins = fields.List(fields.String(), load_default=lambda: ["http://localhost:8000"],
                          validate=validate.Length(min=1),
                          **_doc("origins a ceremony may come from: pages on rp_id or below it, and "
                                 "native apps' (`android:apk-key-hash:...`)"))

    @validates_schema
    def check_origins(self, data: dict[str, Any], **kwargs: Any) -> None:
        """A web origin must be on rp_id or a subdomain of it, as browsers require; https unless localhost."""
        rp_id = data["rp_id"]
        for origin in data["origins"]:
            if origin.startswith(NATIVE_ORIGINS):
                continue
            parts = urlsplit(origin)
            host = parts.hostname or ""
            if parts.scheme not in ("https", "http") or (parts.scheme == "http" and host != "localhost"):
                raise ValidationError(f"{origin}: https (http only for localhost), or a native app's origin",
                                      field_name="origins")
            if host != rp_id and not host.endswith("." + rp_id):
                raise ValidationError(f"{origin}: not on rp_id {rp_id}", field_name="origins")


class IntrospectionSection(_Section):
    clients = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                          values=fields.String(validate=validate.Length(min=32)), load_default=dict,
                          **_doc("services allowed to ask POST /api/system/introspect: id -> secret (32+ "
                                 "characters), sent as HTTP Basic"))


class AuthSection(_Section):
    jwt_secret = fields.String(required=True, validate=validate.Length(min=16),
                               **_doc("signs tokens and email-code digests; 32+ characters in production"))
    jwt_keys_dir = fields.String(load_default="", **_doc("the keyset `flask keys` writes (EdDSA, ES256, HS256 keys "
                                                        "with kids); empty: jwt_secret alone"))
    jwks_max_age = fields.Integer(load_default=300, validate=validate.Range(min=0, max=86400),
                                  **_doc("seconds verifiers may keep /.well-known/jwks.json; wait this long "
                                         "between `keys generate` and `keys promote`"))
    jwt_algorithm = fields.String(load_default="HS256", validate=validate.OneOf(["HS256", "HS384", "HS512"]),
                                  **_doc("HMAC algorithm of the tokens"))
    access_token_ttl = fields.Integer(load_default=86400, validate=validate.Range(min=1), **_doc("seconds (24 h)"))
    refresh_token_ttl = fields.Integer(load_default=604800, validate=validate.Range(min=1),
                                       **_doc("seconds (7 days)"))
    refresh_grace_seconds = fields.Integer(load_default=30, validate=validate.Range(min=0),
                                           **_doc("a just-rotated refresh token still answers for this long"))
    max_sessions_per_user = fields.Integer(load_default=10, validate=validate.Range(min=1),
                                           **_doc("devices signed in at once; the oldest is ended"))
    max_failed_logins = fields.Integer(load_default=5, validate=validate.Range(min=1),
                                       **_doc("wrong passwords before the address is locked"))
    lockout_minutes = fields.Float(load_default=15, validate=validate.Range(min=0), **_doc("length of a lockout"))
    email_code_ttl = fields.Integer(load_default=300, validate=validate.Range(min=1),
                                    **_doc("seconds a mailed code stays valid"))
    email_code_resend_seconds = fields.Integer(load_default=60, validate=validate.Range(min=0),
                                               **_doc("seconds before another code can be sent"))
    email_code_max_attempts = fields.Integer(load_default=5, validate=validate.Range(min=1),
                                             **_doc("wrong tries that spend one code"))
    reauth_max_age = fields.Integer(load_default=600, validate=validate.Range(min=1),
                                    **_doc("seconds a sign-in counts as recent for a sensitive change"))
    require_email_confirmation = fields.Boolean(
        load_default=False, **_doc("register mails a code, and only confirming it creates the account"))
    rate_limits = _section(RateLimitsSection)
    password_hashing = _section(PasswordHashingSection)
    webauthn = _section(WebAuthnSection)
    introspection = _section(IntrospectionSection)


class SmtpSection(_Section):
    host = fields.String(required=True, **_doc("mail server for the codes"))
    port = fields.Integer(required=True, validate=validate.Range(min=1, max=65535), **_doc("its port"))
    username = fields.String(load_default="", **_doc("login, if the server wants one"))
    password = fields.String(load_default="", **_doc("secret: set APP__SMTP__PASSWORD"))
    security = fields.String(load_default="none", validate=validate.OneOf(["none", "starttls", "ssl"]),
                             **_doc("`none`, `starttls` or `ssl`"))
    sender = fields.String(required=True, **_doc("From: of the mails"))
    timeout = fields.Float(load_default=5, validate=validate.Range(min=0.1), **_doc("seconds per SMTP call"))


class OrderSection(_Section):
    expire_seconds = fields.Integer(load_default=1800, validate=validate.Range(min=1),
                                    **_doc("an unpaid order expires after this many seconds"))
    sweep_batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10000),
                                      **_doc("rows per transaction in `flask expire-orders`"))


class ProductSection(_Section):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"), **_doc("unique"))
    name = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.Length(min=1, max=128)),
                       required=True, validate=validate.Length(min=1), **_doc("by language: `{en: ..., zh_Hans: ...}`"))
    price = fields.Integer(required=True, strict=True, validate=validate.Range(min=1),
                           **_doc("an integer in minor units (cents, fen)"))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"), **_doc("ISO 4217, upper case"))
    active = fields.Boolean(load_default=True, **_doc("false: listed nowhere, cannot be ordered"))


PROVIDER_NAMES = ("dev", "stripe", "alipay")


class DevProviderSection(_Section):
    secret = fields.String(required=True, validate=validate.Length(min=8),
                           **_doc("signs the dev provider's notifications; needed while `dev` is in providers"))


class StripeProviderSection(_Section):
    secret_key = fields.String(load_default="", **_doc("`sk_live_...`; secret"))
    webhook_secret = fields.String(load_default="", **_doc("`whsec_...` of /api/payment/notify/stripe; secret"))
    api_base = fields.String(load_default="https://api.stripe.com", **_doc("Stripe's API"))
    success_url = fields.String(load_default="http://localhost:3000/orders/{order_no}",
                                **_doc("where Checkout sends the buyer after paying"))
    cancel_url = fields.String(load_default="http://localhost:3000/orders/{order_no}",
                               **_doc("where Checkout sends a buyer who gives up"))
    timeout = fields.Float(load_default=10, validate=validate.Range(min=0.1, max=60),
                           **_doc("seconds per call to Stripe"))


class AlipayProviderSection(_Section):
    app_id = fields.String(load_default="", **_doc("the app's id at Alipay"))
    private_key = fields.String(load_default="", **_doc("the app's RSA2 private key, PEM or bare base64; secret"))
    public_key = fields.String(load_default="", **_doc("Alipay's RSA2 public key, from its console"))
    gateway = fields.String(load_default="https://openapi.alipay.com/gateway.do", **_doc("Alipay's gateway"))
    return_url = fields.String(load_default="", **_doc("where the buyer's browser goes after paying"))
    timeout = fields.Float(load_default=10, validate=validate.Range(min=0.1, max=60),
                           **_doc("seconds per call to Alipay's gateway"))
    seller_id = fields.String(load_default="", **_doc("the merchant's PID; set, a notification for another seller "
                                                      "is refused"))


# Keys a provider cannot work without; checked only for the enabled providers.
PROVIDER_KEYS = {"dev": ("secret",), "stripe": ("secret_key", "webhook_secret"),
                 "alipay": ("app_id", "private_key", "public_key")}


class PaymentSection(_Section):
    providers = fields.List(fields.String(validate=validate.OneOf(PROVIDER_NAMES)), load_default=lambda: ["dev"],
                            validate=validate.Length(min=1),
                            **_doc("any of `dev`, `stripe`, `alipay`; each listed one needs its keys"))
    default = fields.String(load_default="dev", **_doc("used when an order names no provider; one of providers"))
    tolerance_seconds = fields.Integer(load_default=300, validate=validate.Range(min=1),
                                       **_doc("notifications signed longer ago (or ahead) are refused as replays"))
    notify_base_url = fields.String(load_default="http://127.0.0.1:8000",
                                    **_doc("this service as providers (and `flask pay-order`) reach it"))
    reconcile_after_seconds = fields.Integer(
        load_default=120, validate=validate.Range(min=0),
        **_doc("`reconcile-orders` asks about a PENDING order once it is this old (its webhook had time)"))
    auto_refund = fields.Boolean(load_default=False,
                                 **_doc("`refunds sweep` refunds every needs_refund payment without asking"))
    dev = fields.Nested(DevProviderSection)
    stripe = _section(StripeProviderSection)
    alipay = _section(AlipayProviderSection)

    @validates_schema
    def check_providers(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["default"] not in data["providers"]:
            raise ValidationError("must be one of payment.providers", field_name="default")
        for name in data["providers"]:
            section = data.get(name)
            for key in PROVIDER_KEYS[name]:
                if not getattr(section, key, None):
                    raise ValidationError({key: [f"required while {name} is in payment.providers"]},
                                          field_name=name)


class WorkaroundsSection(_Section):
    # Each is a reach into a library's private parts (workarounds.py says why); false: the library as it ships.
    drop_idle_limiter_hooks = fields.Boolean(load_default=True, **_doc("skip Flask-Limiter's three idle hooks"))
    cors_only_with_origin = fields.Boolean(load_default=True,
                                           **_doc("consult flask-cors only for requests with an Origin"))
    skip_log_caller_lookup = fields.Boolean(load_default=True, **_doc("no stack walk per log record"))
    gthread_leave_reuse_port_group = fields.Boolean(
        load_default=True, **_doc("a stopping gunicorn worker leaves the port's group at once"))
    zxcvbn_passwords_line = fields.Boolean(load_default=True,
                                           **_doc("read zxcvbn's common passwords alone, not its 12 MB of lists"))
    pre_ping_by_socket = fields.Boolean(
        load_default=True, **_doc("database.pool_pre_ping looks at the socket instead of a round trip to the server"))


class RootSection(_Section):
    app = fields.Nested(AppSection, required=True)
    database = fields.Nested(DatabaseSection, required=True)
    redis = fields.Nested(RedisSection, required=True)
    auth = fields.Nested(AuthSection, required=True)
    smtp = fields.Nested(SmtpSection, required=True)
    order = _section(OrderSection)
    payment = _section(PaymentSection)
    products = fields.List(fields.Nested(ProductSection), load_default=list, **_doc("what is for sale"))
    workarounds = _section(WorkaroundsSection)

    @validates_schema
    def check_products(self, data: dict[str, Any], **kwargs: Any) -> None:
        ids = [product.id for product in data.get("products", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("product ids must be unique", field_name="products")


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> Any:
    """Read the YAML file, apply environment and explicit overrides, validate."""
    path = Path(path or os.environ.get("APP_CONFIG") or DEFAULT_PATH)
    raw = _read_yaml(path)
    _apply_environ(raw, os.environ if environ is None else environ)
    for dotted, value in (overrides or {}).items():
        _set(raw, dotted.split("."), value)
    try:
        config = RootSection().load(raw)
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
    schema: Schema = RootSection()
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


def _get(node: Any, keys: tuple[str, ...]) -> Any:
    """The value at keys, in loaded settings or in the raw YAML alike; None where it is absent."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else getattr(node, key, None)
    return node


def _check_production_secrets(config: Any) -> None:
    if config.app.env != "production":
        return
    shipped = _read_yaml(DEFAULT_PATH)
    for keys in SECRETS:
        value = _get(config, keys)
        if value and value == _get(shipped, keys):
            name = ENV_PREFIX + "__".join(k.upper() for k in keys)
            raise ConfigError(f"{'.'.join(keys)}: still the development value; set {name} in production")
    if len(config.auth.jwt_secret) < 32:
        raise ConfigError("auth.jwt_secret: use at least 32 characters in production")
    defaults = PasswordHashingSection().load({})
    for name in ("time_cost", "memory_cost", "parallelism"):
        if getattr(config.auth.password_hashing, name) < getattr(defaults, name):
            raise ConfigError(f"auth.password_hashing.{name}: at least {getattr(defaults, name)} in production")


def _check_production_providers(config: Any) -> None:
    # The dev provider's notifications pay orders with no money moving: for development and tests only.
    if config.app.env == "production" and "dev" in config.payment.providers:
        raise ConfigError("payment.providers: dev pays orders without money; enable stripe or alipay in production")


# The current app's settings (what load_config returned), read as settings.auth.lockout_minutes.
settings: Any = cast(Any, LocalProxy(lambda: current_app.config["SETTINGS"]))


def reference() -> str:
    """Every setting with its default and meaning, as docs/configuration.md shows them."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    _reference_rows(RootSection(), "", lines)
    return "\n".join(lines) + "\n"


def _reference_rows(schema: Schema, prefix: str, lines: list[str]) -> None:
    for name, field in schema.fields.items():
        if isinstance(field, fields.Nested):
            _reference_rows(field.schema, f"{prefix}{name}.", lines)
            continue
        if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            lines.append(f"| `{prefix}{name}` | `[]` | {field.metadata.get('doc', '')}; each item: |")
            _reference_rows(field.inner.schema, f"{prefix}{name}[].", lines)
            continue
        lines.append(f"| `{prefix}{name}` | {_shown_default(field)} | {field.metadata.get('doc', '')} |")


def _shown_default(field: fields.Field) -> str:
    if field.required:
        return "required"
    default = field.load_default
    if default is marshmallow_missing:
        return "—"
    value = default() if callable(default) else default
    return f"`{json.dumps(value, ensure_ascii=False)}`"
