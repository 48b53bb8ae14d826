from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a dependency is down"})
    database = fields.String()
    redis = fields.String()
    version = fields.String()
