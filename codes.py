"""The one registry of response codes: number, HTTP status and message.

Numbering: 100xx common and auth, 101xx user, 200xx order, 300xx payment.
Messages are English msgids; flask-babel translates them per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class Code:
    code: int
    status: int
    # A lazy string, rendered in the request's language. Not part of equality or the hash:
    # hashing a lazy string translates it, and errors._message caches by code.
    message: object = field(compare=False)


# common
SUCCESS = Code(10000, 200, _l("success"))
VALIDATION_ERROR = Code(10001, 422, _l("Some fields are invalid."))
MALFORMED_REQUEST = Code(10002, 400, _l("The request body is not valid JSON."))
NOT_FOUND = Code(10003, 404, _l("The requested resource was not found."))
METHOD_NOT_ALLOWED = Code(10004, 405, _l("This method is not allowed here."))
PAYLOAD_TOO_LARGE = Code(10005, 413, _l("The request body is too large."))
RATE_LIMITED = Code(10010, 429, _l("Too many requests. Try again in %(seconds)s seconds."))
UNSUPPORTED_MEDIA_TYPE = Code(10011, 415, _l("Send the request body as application/json."))
BAD_REQUEST = Code(10012, 400, _l("The request could not be understood."))
URI_TOO_LONG = Code(10022, 414, _l("The request URL is too long."))
HEADER_TOO_LARGE = Code(10023, 431, _l("A request header is too large."))
SERVICE_UNAVAILABLE = Code(10020, 503, _l("The service is temporarily unavailable. Try again shortly."))
INTERNAL_ERROR = Code(10099, 500, _l("Something went wrong on our side."))

# auth
AUTH_INVALID_CREDENTIALS = Code(10006, 401, _l("Email or password is incorrect."))
AUTH_TOKEN_MISSING = Code(10007, 401, _l("Sign in to continue."))
AUTH_TOKEN_INVALID = Code(10008, 401, _l("The token is invalid."))
AUTH_TOKEN_EXPIRED = Code(10009, 401, _l("The token has expired."))
AUTH_TOKEN_REVOKED = Code(10013, 401, _l("The token has been revoked. Sign in again."))
AUTH_ACCOUNT_LOCKED = Code(10014, 423, _l("Too many failed attempts. Try again in %(seconds)s seconds."))
AUTH_EMAIL_CODE_INVALID = Code(10015, 400, _l("The verification code is incorrect."))
AUTH_EMAIL_CODE_EXPIRED = Code(10016, 400, _l("The verification code has expired or was used up. Request a new one."))
AUTH_EMAIL_CODE_TOO_SOON = Code(10017, 429, _l("A code was just sent. Request another in %(seconds)s seconds."))
AUTH_EMAIL_SEND_FAILED = Code(10018, 503, _l("The verification email could not be sent. Try again later."))
# 10019 (too many wrong codes for an email) is retired: wrong tries count per code.
AUTH_SESSION_NOT_FOUND = Code(10021, 404, _l("Session not found."))
AUTH_TWO_FACTOR_ON = Code(10024, 409, _l("Two-factor sign-in is on already."))
AUTH_TWO_FACTOR_NOT_SET_UP = Code(10025, 409, _l("Set up two-factor sign-in first."))
AUTH_TWO_FACTOR_CODE_INVALID = Code(10026, 401, _l("The two-factor code is incorrect or was used already."))
AUTH_REAUTH_REQUIRED = Code(10027, 401, _l("Sign in again to do this."))
PASSKEY_INVALID = Code(10029, 400, _l("The passkey could not be verified."))
PASSKEY_CHALLENGE_EXPIRED = Code(10030, 400, _l("The passkey request has expired or was used. Ask for new options."))
PASSKEY_NOT_FOUND = Code(10031, 404, _l("Passkey not found."))
PASSKEY_EXISTS = Code(10032, 409, _l("This passkey is registered already."))
INTROSPECTION_CLIENT_INVALID = Code(10033, 401, _l("The service's credentials are missing or wrong."))
AUTH_EMAIL_UNPROVEN = Code(10028, 409, _l("Confirm your email address first: reset your password with a code "
                                          "mailed to it."))

# user
USER_EMAIL_TAKEN = Code(10101, 409, _l("An account with this email already exists."))

# order
ORDER_NOT_FOUND = Code(20001, 404, _l("Order not found."))
ORDER_PRODUCT_NOT_FOUND = Code(20002, 404, _l("This product does not exist or is not for sale."))
ORDER_INVALID_TRANSITION = Code(20003, 409, _l("This order can no longer be changed: it is not pending."))
ORDER_IDEMPOTENCY_CONFLICT = Code(20004, 409, _l("This Idempotency-Key was already used for a different request."))
ORDER_CURRENCY_NOT_SUPPORTED = Code(20005, 400, _l("This payment provider does not accept this product's currency."))

# payment
PAYMENT_PROVIDER_NOT_FOUND = Code(30001, 404, _l("This payment provider is not available."))
PAYMENT_SIGNATURE_INVALID = Code(30002, 400, _l("The payment notification's signature is invalid."))
PAYMENT_NOTIFICATION_EXPIRED = Code(30003, 400, _l("The payment notification is too old or not yet valid."))
PAYMENT_NOTIFICATION_INVALID = Code(30004, 400, _l("The payment notification could not be understood."))
PAYMENT_AMOUNT_MISMATCH = Code(30005, 400, _l("The paid amount or currency does not match the order."))
PAYMENT_PROVIDER_ERROR = Code(30006, 502, _l("The payment provider could not be reached. Try again shortly."))

REGISTRY: dict[str, Code] = {name: value for name, value in globals().items() if isinstance(value, Code)}
