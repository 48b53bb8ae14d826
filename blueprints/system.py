"""Health, the Prometheus metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory
from flask.blueprints import BlueprintSetupState
from swagger_ui_bundle import swagger_ui_path

import codes
import metrics
from api import ERROR_REF, build_spec, documented, response
from errors import ApiError, envelope
from extensions import client_ip, limiter
from schemas.system import HealthSchema
from services import health

bp = Blueprint("system", __name__, url_prefix="/api")

DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Flask API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#docs", displayOperationId: true});</script>
</body></html>"""


@bp.record
def build_health_probe(state: BlueprintSetupState) -> None:
    health.init_app(state.app)


@bp.get("/system/health")
@limiter.exempt
@response(HealthSchema)
def health_check():
    """Report whether the database and Redis answer."""
    report = health.check()
    if report["status"] != "ok":
        return envelope(codes.SERVICE_UNAVAILABLE, HealthSchema().dump(report))
    return report


@bp.record
def add_metrics_route(state: BlueprintSetupState) -> None:
    """Only with app.metrics on: off, the path is as unknown as any other."""
    if state.app.config["SETTINGS"].app.metrics:
        state.add_url_rule("/system/metrics", view_func=metrics_page, methods=["GET"])


@limiter.exempt
@documented(replace_responses={
    "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
    "404": {"description": "for an address outside app.metrics_allow, as if metrics were off: 10003",
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}})
def metrics_page():
    """Prometheus text format: every worker's counts, added up; for app.metrics_allow's networks only."""
    if not metrics.allowed(client_ip()):
        # 404, as if metrics were off: to anyone else the endpoint does not exist.
        raise ApiError(codes.NOT_FOUND)
    body, content_type = metrics.exposition()
    return current_app.response_class(body, content_type=content_type)


@bp.get("/openapi.json")
@limiter.exempt
def openapi():
    """The OpenAPI 3 document, built once per process."""
    if "OPENAPI" not in current_app.extensions:
        current_app.extensions["OPENAPI"] = build_spec(current_app)
    return current_app.extensions["OPENAPI"]


@bp.get("/docs")
@limiter.exempt
def docs():
    return DOCS_PAGE


@bp.get("/docs/<path:filename>")
@limiter.exempt
def docs_asset(filename: str):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
