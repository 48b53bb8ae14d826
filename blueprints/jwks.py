"""For other services that check this service's tokens: /.well-known/jwks.json, the public keys
that verify them (RFC 7517), and POST /api/system/introspect, whether one is still live (RFC 7662)."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

import codes
from api import arguments, documented, response
from config import settings
from extensions import client_ip, limiter
from schemas.system import IntrospectSchema
from services import introspection, keyset

bp = Blueprint("jwks", __name__)

JWK_SET = {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": {
    "type": "object", "required": ["kty", "kid", "alg", "use"], "additionalProperties": True}}}}


INTROSPECTION = {"type": "object", "required": ["active"], "properties": {
    "active": {"type": "boolean"}, "token_type": {"type": "string"}, "sub": {"type": "string"},
    "sid": {"type": "string"}, "iat": {"type": "integer"}, "exp": {"type": "integer"},
    "amr": {"type": "array", "items": {"type": "string"}}, "auth_time": {"type": "integer"}}}


@bp.get("/.well-known/jwks.json")
@limiter.exempt
@documented(replace_responses={"200": {"description": "the JWK Set (RFC 7517), not the envelope: the next, "
                                                      "active and retired asymmetric keys",
                                       "content": {"application/json": {"schema": JWK_SET}}}})
def jwks():
    """The public keys of the tokens' signing keys, to be cached for Cache-Control's max-age."""
    answer = jsonify({"keys": [key.public_jwk() for key in keyset.current().published()]})
    answer.headers["Cache-Control"] = f"public, max-age={settings.auth.jwks_max_age}"
    return answer


@bp.post("/api/system/introspect")
@limiter.limit(lambda: settings.auth.rate_limits.introspect_per_ip, key_func=client_ip)
@documented(security=[{"introspectionClient": []}], replace_responses={"200": {
    "description": "RFC 7662's answer, not the envelope: active false, or the live token's claims",
    "content": {"application/json": {"schema": INTROSPECTION}}}})
@response(errors=[codes.INTROSPECTION_CLIENT_INVALID])
@arguments(IntrospectSchema, location="form")
def introspect(form):
    """Whether an access token is live now (RFC 7662), for a service of auth.introspection.clients."""
    introspection.authenticate(request.authorization)
    return current_app.response_class(json.dumps(introspection.introspect(form["token"])),
                                      mimetype="application/json", headers={"Cache-Control": "no-store"})
