"""The request pipeline as a client sees it: envelope, errors, i18n, request ids,
CORS, health and the API document."""

import json
import socket
import time

import pytest
from marshmallow import Schema, fields

import codes
from api import arguments, response
from logs import JsonFormatter
from schemas.common import between


def test_health_reports_both_dependencies_ok(client):
    response = client.get("/api/system/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["code"] == 10000 and body["msg"] == "success"
    assert body["data"]["status"] == "ok"
    assert body["data"]["database"] == "ok" and body["data"]["redis"] == "ok"
    assert body["data"]["version"]


def test_health_turns_503_quickly_when_redis_port_is_closed(make_app):
    app = make_app(redis__url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = app.test_client().get("/api/system/health")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == codes.SERVICE_UNAVAILABLE.code
    assert body["data"]["redis"] == "down" and body["data"]["database"] == "ok"


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers, like a frozen server."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    yield silent.getsockname()[1]
    silent.close()


@pytest.mark.parametrize(("part", "settings"), [
    ("redis", lambda port: {"redis__url": f"redis://127.0.0.1:{port}/0", "redis__socket_timeout": 0.5}),
    ("database", lambda port: {"database__url": f"mysql+pymysql://root@127.0.0.1:{port}/flask_api_test"}),
])
def test_health_does_not_hang_on_a_server_that_never_answers(make_app, silent_port, part, settings):
    app = make_app(**settings(silent_port))
    started = time.monotonic()
    response = app.test_client().get("/api/system/health")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.get_json()["data"][part] == "down"


def test_health_reports_database_down(make_app):
    app = make_app(database__url="mysql+pymysql://root@127.0.0.1:1/flask_api_test")
    response = app.test_client().get("/api/system/health")
    assert response.status_code == 503
    assert response.get_json()["data"] == {**response.get_json()["data"], "database": "down", "redis": "ok"}


def test_a_request_during_a_database_outage_is_a_503_logged_with_the_server_error_number(make_app, capsys):
    client = make_app(database__url="mysql+pymysql://root@127.0.0.1:1/flask_api_test").test_client()
    response = client.post("/api/client/auth/login", json={"email": "a@example.com", "password": "password123"})
    assert response.status_code == 503
    assert response.get_json()["code"] == codes.SERVICE_UNAVAILABLE.code
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line["msg"].startswith("dependency unavailable")]
    assert logged["db_error"] == 2003  # can't connect: an outage, not a deadlock (1213)


def test_unknown_route_is_a_404_envelope(client):
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.get_json() == {"code": codes.NOT_FOUND.code, "data": None,
                                   "msg": "The requested resource was not found."}


def test_wrong_method_is_a_405_envelope(client):
    response = client.delete("/api/system/health")
    assert response.status_code == 405
    assert response.get_json()["code"] == codes.METHOD_NOT_ALLOWED.code


class EchoSchema(Schema):
    email = fields.Email(required=True)
    count = fields.Integer(validate=between(1, 99))


@pytest.fixture
def echo_client(make_app):
    """An app with one extra view that parses a body the way every real view does."""
    app = make_app()

    @app.post("/api/echo")
    @response()
    @arguments(EchoSchema)
    def echo(body):
        return body

    return app.test_client()


def test_a_valid_body_is_parsed_and_answered_in_the_envelope(echo_client):
    body = echo_client.post("/api/echo", json={"email": "a@example.com", "count": 2}).get_json()
    assert body == {"code": 10000, "data": {"email": "a@example.com", "count": 2}, "msg": "success"}


def test_malformed_json_is_a_400_envelope(echo_client):
    response = echo_client.post("/api/echo", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == codes.MALFORMED_REQUEST.code


def test_a_body_that_is_not_json_is_a_415_envelope(echo_client):
    response = echo_client.post("/api/echo", data="email=a@example.com", content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["code"] == codes.UNSUPPORTED_MEDIA_TYPE.code


def test_validation_errors_name_each_field_in_the_requests_language(echo_client):
    english = echo_client.post("/api/echo", json={"email": "nope", "count": 0, "extra": 1})
    assert english.status_code == 422
    body = english.get_json()
    assert body["code"] == codes.VALIDATION_ERROR.code
    assert body["data"]["fields"]["email"] == ["Not a valid email address."]
    assert body["data"]["fields"]["extra"] == ["Unknown field."]
    assert body["data"]["fields"]["count"] == ["Must be between 1 and 99."]
    chinese = echo_client.post("/api/echo?lang=zh-CN", json={"email": "nope", "count": 0}).get_json()
    assert chinese["data"]["fields"]["email"] == ["邮箱地址格式不正确。"]
    assert chinese["data"]["fields"]["count"] == ["必须在 1 到 99 之间。"]
    assert chinese["msg"] != body["msg"]


def test_a_2_mib_body_is_a_413_envelope(echo_client):
    response = echo_client.post("/api/echo", data=b"x" * (2 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["code"] == codes.PAYLOAD_TOO_LARGE.code


def test_an_unexpected_exception_is_a_500_envelope_with_the_request_id_and_no_trace(make_app, caplog):
    app = make_app()

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    body = response.get_json()
    assert body == {"code": codes.INTERNAL_ERROR.code, "data": {"request_id": "req-123"},
                    "msg": "Something went wrong on our side."}
    assert "secret internals" not in response.get_data(as_text=True)


def test_the_same_error_reads_differently_in_english_and_chinese(client):
    english = client.get("/api/nope", headers={"Accept-Language": "en-US,en;q=0.9"}).get_json()
    chinese = client.get("/api/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    assert english["code"] == chinese["code"]
    assert english["msg"] == "The requested resource was not found."
    assert chinese["msg"] == "请求的资源不存在。"


def test_lang_query_parameter_wins_over_accept_language(client):
    body = client.get("/api/nope?lang=zh", headers={"Accept-Language": "en"}).get_json()
    assert body["msg"] == "请求的资源不存在。"


def test_request_id_is_echoed_or_made(client):
    echoed = client.get("/api/system/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = client.get("/api/system/health", headers={"X-Request-ID": "bad id\twith junk"})
    assert made.headers["X-Request-ID"] not in ("", "bad id\twith junk")
    assert len(made.headers["X-Request-ID"]) == 32


def test_one_structured_log_line_per_request(client, caplog):
    client.get("/api/system/health?code=123456", headers={"X-Request-ID": "log-check-1"})
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "flask_api.access"]
    access = [line for line in lines if line["request_id"] == "log-check-1"]
    assert len(access) == 1
    assert access[0]["method"] == "GET" and access[0]["path"] == "/api/system/health"
    assert access[0]["status"] == 200 and access[0]["duration_ms"] >= 0
    assert "123456" not in json.dumps(access[0])


def test_cors_preflight_from_an_allowed_origin_succeeds(client):
    response = client.options("/api/system/health", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"})
    assert response.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"


def test_cors_preflight_from_another_origin_is_not_allowed(client):
    response = client.options("/api/system/health", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_security_headers(client):
    response = client.get("/api/system/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_openapi_document_lists_the_endpoints(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert "/api/system/health" in document["paths"]
    health = document["paths"]["/api/system/health"]["get"]
    envelope = health["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert document["components"]["schemas"][envelope]["properties"]["data"] == {"$ref": "#/components/schemas/Health"}


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and b"/api/openapi.json" in page.data
    asset = client.get("/api/docs/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_an_over_long_url_or_header_is_refused_with_the_envelope_in_the_asked_language(client):
    url = client.get("/api/client/order/products?pad=" + "a" * 5000, headers={"Accept-Language": "zh-CN"})
    assert url.status_code == 414
    assert url.get_json() == {"code": 10022, "data": None, "msg": "请求的 URL 过长。"}
    header = client.get("/api/client/order/products", headers={"X-Padding": "a" * 9000})
    assert (header.status_code, header.get_json()["code"]) == (431, 10023)
    assert client.get("/api/client/order/products?pad=" + "a" * 3000).status_code == 200  # within the limit
