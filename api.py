"""The view contract: parse input with a schema, dump output with a schema, and
the OpenAPI document built from those same schemas."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from marshmallow import Schema

import codes
from errors import ApiError, ok
from schemas.common import Dumped

if TYPE_CHECKING:
    from apispec import APISpec

PATH_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _contract(view: Callable) -> dict[str, Any]:
    """The OpenAPI facts a view's decorators recorded (shared by every wrapper)."""
    return view.__dict__.setdefault("_openapi", {})


def parsed_json() -> Any:
    """The body parsed as JSON, or None when it is not JSON at all."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser will go; silent= only covers ValueError
        return None


def read_json() -> Any:
    """The request body as JSON; an empty body counts as {}."""
    if not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ApiError(codes.UNSUPPORTED_MEDIA_TYPE)
    data = parsed_json()
    if data is None:
        raise ApiError(codes.MALFORMED_REQUEST)
    return data


def arguments(schema_cls: type[Schema], location: str = "json") -> Callable:
    """Load the JSON body (or the "query" string, or the "headers") with schema_cls; pass it as the first argument.

    Query and header schemas should exclude unknown keys: other parameters and headers are normal.
    """
    schema = schema_cls()
    declared = [field.data_key or name for name, field in schema.load_fields.items()]
    readers = {
        "json": read_json,
        "query": lambda: request.args.to_dict(),
        # Only the headers the schema declares, looked up case-insensitively: not every header of
        # every request copied into a dict for the schema to skip.
        "headers": lambda: {name: request.headers[name] for name in declared if name in request.headers},
    }
    read = readers[location]

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(schema.load(read()), *args, **kwargs)

        _contract(wrapper)[location] = schema_cls
        return wrapper

    return decorator


def response(schema_cls: type[Schema] | None = None, status: int = 200,
             also: dict[int, type[Schema]] | None = None) -> Callable:
    """Dump what the view returns with schema_cls and wrap it in the envelope.

    A view may return (result, status) to answer with another success status; also names the
    schema of each other status it answers with a body of another shape.
    """
    schema = schema_cls() if schema_cls else None
    other_schemas = {code: cls() for code, cls in (also or {}).items()}

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = view(*args, **kwargs)
            if isinstance(result, Response):
                return result
            answer_status = status
            if isinstance(result, tuple):
                result, answer_status = result
            dumper = other_schemas.get(answer_status, schema)
            if isinstance(result, Dumped):
                data = result.data
            else:
                data = dumper.dump(result) if dumper and result is not None else result
            return ok(data, answer_status)

        _contract(wrapper).update(response=schema_cls, status=status, also=also or {})
        return wrapper

    return decorator


def mark_authenticated(view: Callable) -> None:
    _contract(view)["auth"] = True


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3 document for every view that declares its contract."""
    # Imported here: a worker that never serves the document does not load it (0.2 MB).
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec(title="Flask API", version=app.config["VERSION"], openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", {"type": "object", "required": ["code", "data", "msg"], "properties": {
        "code": {"type": "integer"}, "data": {"nullable": True}, "msg": {"type": "string"}}})
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        contract = getattr(app.view_functions[rule.endpoint], "_openapi", None)
        if contract is None:
            continue
        path = PATH_ARG.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = _operation(spec, app.view_functions[rule.endpoint], contract, rule.arguments)
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(spec: APISpec, view: Callable, contract: dict[str, Any], path_args: set[str]) -> dict[str, Any]:
    doc = (view.__doc__ or "").strip().splitlines()
    operation: dict[str, Any] = {
        "summary": doc[0] if doc else view.__name__,
        "operationId": view.__name__,
        "tags": [view.__module__.rsplit(".", 1)[-1]],
        "parameters": [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                       for name in sorted(path_args)],
        "responses": {
            str(contract.get("status", 200)): _envelope_response(spec, contract.get("response")),
            **{str(code): _envelope_response(spec, cls) for code, cls in contract.get("also", {}).items()},
            "default": {"description": "Error envelope", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    for location, where in (("query", "query"), ("headers", "header")):
        if location in contract:
            operation["parameters"].append({"in": where, "schema": contract[location]})
    if "json" in contract:
        body_schema = contract["json"]
        required = any(field.required for field in body_schema().fields.values())  # else an empty body is {}
        operation["requestBody"] = {"required": required, "content": {"application/json": {"schema": body_schema}}}
    if contract.get("auth"):
        operation["security"] = [{"bearerAuth": []}]
    return operation


def _envelope_response(spec: APISpec, schema_cls: type[Schema] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"nullable": True}
    if schema_cls is not None:
        name = schema_cls.__name__.removesuffix("Schema") or schema_cls.__name__
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema_cls)
        data = {"$ref": f"#/components/schemas/{name}"}
    return {"description": "Success envelope", "content": {"application/json": {"schema": {
        "type": "object", "required": ["code", "data", "msg"],
        "properties": {"code": {"type": "integer"}, "data": data, "msg": {"type": "string"}}}}}}
