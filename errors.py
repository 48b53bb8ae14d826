"""ApiError, the response envelope, and the one place errors become responses."""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, current_app, g, json
from flask_babel import get_locale, gettext
from flask_limiter.errors import RateLimitExceeded
from limits.errors import StorageError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

import codes
import metrics
from codes import Code
from extensions import limiter

# Failures of a dependency, not of the request: the client may retry.
UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    StorageError,
)

HTTP_CODES = {
    400: codes.BAD_REQUEST,
    404: codes.NOT_FOUND,
    405: codes.METHOD_NOT_ALLOWED,
    413: codes.PAYLOAD_TOO_LARGE,
    415: codes.UNSUPPORTED_MEDIA_TYPE,
}


class ApiError(Exception):
    """An error the client should see: a registry code, optional data and message parameters."""

    def __init__(self, code: Code, data: Any = None, headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code.code)
        self.code = code
        self.data = data
        self.headers = headers or {}
        self.params = params

    @classmethod
    def retry_after(cls, code: Code, seconds: int) -> ApiError:
        """A refusal that ends in seconds: said in the data, the Retry-After header and the message."""
        return cls(code, data={"retry_after": seconds}, headers={"Retry-After": str(seconds)}, seconds=seconds)


def envelope(code: Code, data: Any = None, status: int | None = None, **params: Any) -> Response:
    """Render {"code", "data", "msg"} with the message in the request's language."""
    message = _message(code, str(get_locale()))
    message = message % params if params else message
    body = json.dumps({"code": code.code, "data": data, "msg": message})
    return current_app.response_class(body, status=status or code.status, mimetype="application/json")


@lru_cache(maxsize=512)
def _message(code: Code, locale: str) -> str:
    """A code's message in one language: the catalogs do not change while the process runs."""
    return str(code.message)


def ok(data: Any = None, status: int = 200) -> Response:
    return envelope(codes.SUCCESS, data, status=status)


def handle_api_error(exc: ApiError) -> Response:
    response = envelope(exc.code, exc.data, **exc.params)
    response.headers.update(exc.headers)
    return response


def handle_validation_error(exc: ValidationError) -> Response:
    return envelope(codes.VALIDATION_ERROR, {"fields": _translate(exc.messages)})


def handle_http_exception(exc: HTTPException) -> Response:
    if isinstance(exc, RateLimitExceeded):
        return _rate_limited()
    status = exc.code or 500
    if status >= 500:
        return handle_unexpected(exc)
    response = envelope(HTTP_CODES.get(status, codes.BAD_REQUEST), status=status)
    response.headers.extend(name_value for name_value in exc.get_headers() if name_value[0] == "Allow")
    return response


def handle_unavailable(exc: Exception) -> Response:
    # The server's error number tells an outage (2003, 2013) from a deadlock (1213) or a lock wait
    # timeout (1205), which are retryable too but call for a look at the queries; never the message.
    driver_error = getattr(exc, "orig", None)
    number = driver_error.args[0] if driver_error is not None and driver_error.args else None
    current_app.logger.warning("dependency unavailable: %s", exc.__class__.__name__,
                               extra={"fields": {"db_error": number} if number is not None else {}})
    metrics.unavailable(exc, number)
    return envelope(codes.SERVICE_UNAVAILABLE)


def handle_unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error")
    return envelope(codes.INTERNAL_ERROR, {"request_id": g.get("request_id")})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for exc_type in UNAVAILABLE:
        app.register_error_handler(exc_type, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)


def _rate_limited() -> Response:
    metrics.rate_limited()
    limit = limiter.current_limit
    seconds = max(1, math.ceil(limit.reset_at - time.time())) if limit else 60
    return handle_api_error(ApiError.retry_after(codes.RATE_LIMITED, seconds))


def _translate(messages: Any) -> Any:
    """Marshmallow's built-in messages are English; look each one up in our catalog."""
    if isinstance(messages, dict):
        return {key: _translate(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_translate(value) for value in messages]
    return gettext(str(messages)) if isinstance(messages, str) else str(messages)
