"""The OpenAPI document's errors: each operation lists, status by status, the codes it can answer
(its own and the pipeline's), and a request that fails answers one of them."""

from __future__ import annotations

import pytest

import codes
from services.payments.dev import HEADER as DEV_SIGNATURE
from tests.helpers import PASSWORD

CANCEL = "/api/client/order/cancel/{order_no}"
STATUS = "/api/client/order/status/{order_no}"
CREATE = "/api/client/order/create"
LOGIN = "/api/client/auth/login"
REFRESH = "/api/client/auth/refresh"
SESSION = "/api/client/auth/sessions/{session_id}"
NOTIFY = "/api/payment/notify/{provider}"
MISSING_ORDER = "20990101000000000000"
TOKEN_CODES = sorted(code.code for code in (codes.AUTH_TOKEN_MISSING, codes.AUTH_TOKEN_INVALID,
                                            codes.AUTH_TOKEN_EXPIRED, codes.AUTH_TOKEN_REVOKED))
# No operation lists these: the error handlers answer them for requests that reach no view's code
# (a method the path does not take; any other 4xx werkzeug raises, such as a body cut short), 500 is
# the default response. The 414 and 431 that any request may meet are listed by every operation.
OUTSIDE_OPERATIONS = {codes.METHOD_NOT_ALLOWED, codes.BAD_REQUEST, codes.INTERNAL_ERROR}


@pytest.fixture(scope="module")
def document(app):
    return app.test_client().get("/api/openapi.json").get_json()


def listed_codes(document, method: str, path: str, status: int | str) -> list[int]:
    """The codes one status of one operation lists, once it is seen to be the Error envelope."""
    schema = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    envelope, code = schema["allOf"]
    assert envelope == {"$ref": "#/components/schemas/Error"}
    return code["properties"]["code"]["enum"]


def assert_documented(document, method: str, path: str, answer, expected: codes.Code) -> None:
    assert (answer.status_code, answer.get_json()["code"]) == (expected.status, expected.code)
    assert expected.code in listed_codes(document, method, path, answer.status_code)


def test_every_error_code_is_listed_under_its_status_or_answered_outside_the_operations(document):
    by_number = {code.code: code for code in codes.REGISTRY.values()}
    listed = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in operation["responses"].keys() - {"default"}:
                if int(status) >= 400:
                    numbers = listed_codes(document, method, path, status)
                    assert {by_number[number].status for number in numbers} == {int(status)}, (path, status)
                    listed.update(numbers)
    errors = {code.code for code in codes.REGISTRY.values() if code.status >= 400}
    assert listed == errors - {code.code for code in OUTSIDE_OPERATIONS}


def test_cancel_lists_its_own_codes_and_those_of_a_signed_in_operation(document):
    responses = document["paths"][CANCEL]["post"]["responses"]
    assert set(responses) == {"200", "401", "404", "409", "414", "431", "503", "default"}
    # NOT_FOUND: an order_no with a slash in it matches no route
    assert listed_codes(document, "post", CANCEL, 404) == [codes.NOT_FOUND.code, codes.ORDER_NOT_FOUND.code]
    assert responses["404"]["description"] == "10003 The requested resource was not found.; 20001 Order not found."
    assert listed_codes(document, "post", CANCEL, 409) == [codes.ORDER_INVALID_TRANSITION.code]
    assert responses["409"]["description"] == "20003 This order can no longer be changed: it is not pending."
    assert listed_codes(document, "post", CANCEL, 401) == TOKEN_CODES
    assert responses["default"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize(("method", "path", "statuses"), [
    # a JSON body, limits, a two-factor challenge
    ("post", LOGIN, {"200", "202", "400", "401", "413", "415", "422", "423", "429", "503"}),
    ("get", "/api/client/auth/me", {"200", "401", "503"}),  # a token and nothing else
    ("get", "/api/client/order/list", {"200", "401", "422", "503"}),  # a query
    ("get", "/api/client/order/products", {"200", "503"}),
    ("post", NOTIFY, {"200", "400", "404", "413", "503"}),  # a raw body: neither 415 nor 422
])
def test_the_pipeline_adds_the_codes_of_what_an_operation_has(document, method, path, statuses):
    assert set(document["paths"][path][method]["responses"]) == statuses | {"414", "431", "default"}


def test_only_the_operations_with_a_limit_list_429(document):
    assert listed_codes(document, "post", LOGIN, 429) == [codes.RATE_LIMITED.code]
    send_code = "/api/client/auth/send-email-code"
    assert listed_codes(document, "post", send_code, 429) == [codes.RATE_LIMITED.code,
                                                              codes.AUTH_EMAIL_CODE_TOO_SOON.code]
    assert "429" not in document["paths"]["/api/client/auth/logout"]["post"]["responses"]
    assert "429" not in document["paths"][CREATE]["post"]["responses"]


def test_the_messages_are_english_whatever_language_the_first_request_asks_for(make_app):
    document = make_app().test_client().get("/api/openapi.json?lang=zh_Hans").get_json()
    login = document["paths"][LOGIN]["post"]["responses"]
    assert login["401"]["description"] == "10006 Email or password is incorrect."
    assert login["429"]["description"] == "10010 Too many requests. Try again in N seconds."


@pytest.mark.parametrize(("method", "path", "url", "request_args", "expected"), [
    ("post", CANCEL, f"/api/client/order/cancel/{MISSING_ORDER}", {}, codes.ORDER_NOT_FOUND),
    ("post", CANCEL, "/api/client/order/cancel/a%2Fb", {}, codes.NOT_FOUND),
    ("get", STATUS, f"/api/client/order/status/{MISSING_ORDER}", {}, codes.ORDER_NOT_FOUND),
    ("post", CREATE, CREATE, {"json": {"product_id": "no-such-product"}}, codes.ORDER_PRODUCT_NOT_FOUND),
    ("post", CREATE, CREATE, {"json": {"product_id": "basic-monthly", "quantity": 0}}, codes.VALIDATION_ERROR),
    ("delete", SESSION, "/api/client/auth/sessions/no-such-session", {}, codes.AUTH_SESSION_NOT_FOUND),
    ("post", REFRESH, REFRESH, {"json": {"refresh_token": "not-a-token"}}, codes.AUTH_TOKEN_INVALID),
    ("post", LOGIN, LOGIN, {"json": {"email": "alice@example.com", "password": "not the password"}},
     codes.AUTH_INVALID_CREDENTIALS),
    ("post", LOGIN, LOGIN, {"data": "{", "content_type": "application/json"}, codes.MALFORMED_REQUEST),
    ("post", NOTIFY, "/api/payment/notify/no-such-provider", {"data": b"{}"}, codes.PAYMENT_PROVIDER_NOT_FOUND),
    ("post", NOTIFY, "/api/payment/notify/dev", {"data": b"{}", "headers": {DEV_SIGNATURE: "t=1,v1=" + "0" * 64}},
     codes.PAYMENT_SIGNATURE_INVALID),
    ("post", NOTIFY, "/api/payment/notify/dev", {"data": b"x" * (2 * 1024 * 1024)}, codes.PAYLOAD_TOO_LARGE),
])
def test_a_failing_request_answers_a_status_and_code_the_document_lists(document, client, auth_headers, method, path,
                                                                        url, request_args, expected):
    request_args = {**request_args, "headers": {**auth_headers, **request_args.get("headers", {})}}
    assert_documented(document, method, path, client.open(url, method=method.upper(), **request_args), expected)


def test_cancelling_twice_and_without_a_token_answer_what_the_document_lists(document, client, auth_headers):
    created = client.post(CREATE, json={"product_id": "basic-monthly"}, headers=auth_headers)
    url = CANCEL.format(order_no=created.get_json()["data"]["order_no"])
    assert client.post(url, headers=auth_headers).status_code == 200
    assert_documented(document, "post", CANCEL, client.post(url, headers=auth_headers), codes.ORDER_INVALID_TRANSITION)
    assert_documented(document, "post", CANCEL, client.post(url), codes.AUTH_TOKEN_MISSING)


def test_a_limited_login_answers_the_429_the_document_lists(make_app, user):
    app = make_app(auth__rate_limits__login_per_ip="1/minute")
    client = app.test_client()
    document = client.get("/api/openapi.json").get_json()
    body = {"email": user["email"], "password": PASSWORD}
    assert client.post(LOGIN, json=body).status_code == 200
    assert_documented(document, "post", LOGIN, client.post(LOGIN, json=body), codes.RATE_LIMITED)


SECRET_FIELDS = {"access_token", "refresh_token", "mfa_token", "secret", "otpauth_uri", "qr_svg", "recovery_codes"}


def answered_fields(document, node) -> set[str]:
    """Every property name a response schema reaches, through its $refs."""
    if isinstance(node, list):
        return set().union(*(answered_fields(document, item) for item in node))
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        return answered_fields(document, document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
    return set(node.get("properties", {})) | set().union(*(answered_fields(document, value) for value in node.values()))


def test_every_answer_that_can_carry_a_token_or_a_secret_is_not_to_be_stored(client, document, auth_headers):
    carrying = [(method, path) for path, operations in document["paths"].items()
                for method, operation in operations.items()
                if any(status.startswith("2") and answered_fields(document, answer) & SECRET_FIELDS
                       for status, answer in operation["responses"].items())]
    assert len(carrying) >= 10
    for method, path in carrying:
        answer = client.open(path, method=method.upper(), json={}, headers=auth_headers)
        assert answer.headers.get("Cache-Control") == "no-store", (method, path, answer.status_code)


def test_the_metrics_page_is_in_the_document_while_metrics_are_on(make_app):
    document = make_app(app__metrics=True).test_client().get("/api/openapi.json").get_json()
    answers = document["paths"]["/api/system/metrics"]["get"]["responses"]
    assert list(answers["200"]["content"]) == ["text/plain"]
    assert answers["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_every_operation_lists_the_414_and_431_the_app_answers(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"414", "431"} <= set(operation["responses"]), (method, path)
