from marshmallow import Schema, fields

from schemas.common import length


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a dependency is down"})
    database = fields.String()
    redis = fields.String()
    version = fields.String()


class IntrospectSchema(Schema):
    """POST /api/system/introspect's form (RFC 7662)."""

    token = fields.String(required=True, validate=length(min=1, max=4096), metadata={"description": "an access token"})
    token_type_hint = fields.String(load_default=None, metadata={"description": "ignored: access tokens only"})
