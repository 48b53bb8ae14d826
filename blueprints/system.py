"""Health, the OpenAPI document and its docs page."""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory
from flask.blueprints import BlueprintSetupState
from swagger_ui_bundle import swagger_ui_path

import codes
from api import build_spec, response
from errors import envelope
from extensions import limiter
from schemas.system import HealthSchema
from services import health

bp = Blueprint("system", __name__, url_prefix="/api")

DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Flask API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#docs"});</script>
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
