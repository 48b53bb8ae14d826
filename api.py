"""The view contract: parse input with a schema, dump output with a schema, and
the OpenAPI document built from those same schemas."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from flask_babel import force_locale
from flask_limiter.util import get_qualified_name
from marshmallow import Schema

import codes
from codes import Code
from errors import ApiError, ok
from extensions import limiter
from schemas.common import Dumped

if TYPE_CHECKING:
    from apispec import APISpec

PATH_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
MESSAGE_PARAM = re.compile(r"%\(\w+\)s")
ERROR_REF = "#/components/schemas/Error"
SHARED = "x-shared-as"  # marks a schema for _share_named_types while the document is built
# What the request pipeline answers on a view's behalf; build_spec adds them, views declare only their own.
BODY_CODES = (codes.MALFORMED_REQUEST, codes.PAYLOAD_TOO_LARGE, codes.UNSUPPORTED_MEDIA_TYPE)
TOKEN_CODES = (codes.AUTH_TOKEN_MISSING, codes.AUTH_TOKEN_INVALID, codes.AUTH_TOKEN_EXPIRED, codes.AUTH_TOKEN_REVOKED)


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
        "form": lambda: request.form.to_dict(),  # application/x-www-form-urlencoded, as RFC 7662 posts
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
             also: dict[int, type[Schema]] | None = None, errors: Iterable[Code] = ()) -> Callable:
    """Dump what the view returns with schema_cls and wrap it in the envelope.

    A view may return (result, status) to answer with another success status; also names the
    schema of each other status it answers with a body of another shape. errors lists the codes the
    view and its services raise; those of the pipeline (a body, a token, a limit) build_spec adds.
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

        _contract(wrapper).update(response=schema_cls, status=status, also=also or {}, errors=tuple(errors))
        return wrapper

    return decorator


def mark_authenticated(view: Callable) -> None:
    _contract(view)["auth"] = True


def mark_step_up(view: Callable) -> None:
    """The view asks for a recent sign-in too (401 10027 with RFC 9470's WWW-Authenticate)."""
    _contract(view)["step_up"] = True


def documented(**operation: Any) -> Callable:
    """OpenAPI facts a view's schemas cannot say (a raw body, signature headers, another answer's
    media type), merged into its operation; a path parameter given here replaces the default one,
    and replace_responses={status: answer} replaces what the envelope would have said."""

    def decorator(view: Callable) -> Callable:
        _contract(view)["extra"] = operation
        return view

    return decorator


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3 document for every view that declares its contract."""
    # Imported here: a worker that never serves the document does not load it (0.2 MB).
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    marshmallow_plugin = MarshmallowPlugin()
    # 3.1: a nullable value is a type list, and a nullable nested object anyOf it and null, where 3.0
    # needed a catch-all object beside it that generated clients turn into an untyped dict.
    spec = APISpec(title="Flask API", version=app.config["VERSION"], openapi_version="3.1.0",
                   plugins=[marshmallow_plugin], servers=[{"url": "/", "description": "this service"}])
    providers = list(app.config["SETTINGS"].payment.providers)
    marshmallow_plugin.converter.add_attribute_function(
        lambda self, field, **kwargs: {"enum": providers} if field.metadata.get("providers") else {})
    marshmallow_plugin.converter.add_attribute_function(
        lambda self, field, **kwargs: {SHARED: field.metadata["shared_as"]} if "shared_as" in field.metadata else {})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("introspectionClient", {"type": "http", "scheme": "basic"})
    spec.components.schema("Error", {"type": "object", "required": ["code", "data", "msg"], "properties": {
        "code": {"type": "integer"}, "data": {}, "msg": {"type": "string"}}})
    paths: dict[str, dict[str, Any]] = {}
    # The messages as codes.py writes them: the document is built once, in the first request's language.
    with force_locale("en"):
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
    document = spec.to_dict()
    _say_alternatives(app, document["components"]["schemas"])
    _require_every_answered_field(document)
    _share_named_types(document, document["components"]["schemas"])
    return document


def _share_named_types(node: Any, components: dict[str, Any]) -> None:
    """A field with metadata shared_as=<name> becomes a $ref to one component of that name: an enum
    used in several places (an order's status, the status filter) is then one type in a client."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, dict) and SHARED in value:
            name, kind = value.pop(SHARED), value.get("type")
            nullable = isinstance(kind, list) and "null" in kind
            kind = next(part for part in kind if part != "null") if isinstance(kind, list) else kind
            components[name] = {"type": kind, "enum": [item for item in value["enum"] if item is not None]}
            ref = {"$ref": f"#/components/schemas/{name}"}
            node[key] = {**({"anyOf": [ref, {"type": "null"}]} if nullable else ref),
                         **{key: kept for key, kept in value.items() if key == "description"}}
        else:
            _share_named_types(value, components)


def _say_alternatives(app: Flask, components: dict[str, Any]) -> None:
    """A body's either/or rules, which its schema checks in a validates_schema, in the document too:
    EXACTLY_ONE groups of fields, of which one is given and the others absent or null, and
    AT_MOST_ONE groups of string fields, of which not two are strings."""
    bodies = {contract["json"] for view in app.view_functions.values()
              if "json" in (contract := getattr(view, "_openapi", {}))}
    for schema_cls in bodies:
        rules = [{"oneOf": [{"required": [name], "properties": {
                    other: {"not": {"type": "null"}} if other == name else {"type": "null"} for other in group}}
                    for name in group]}
                 for group in getattr(schema_cls, "EXACTLY_ONE", ())]
        rules += [{"not": {"required": list(group), "properties": {name: {"type": "string"} for name in group}}}
                  for group in getattr(schema_cls, "AT_MOST_ONE", ())]
        if rules:
            components[schema_cls.__name__.removesuffix("Schema")]["allOf"] = rules


def _require_every_answered_field(document: dict[str, Any]) -> None:
    """A response is dumped whole: every field of a schema reached from an answer is there (null
    where its type allows), so the document says required, and generated clients need no Unset."""
    schemas = document["components"]["schemas"]
    pending = [ref for path in document["paths"].values() for operation in path.values()
               for answer in operation["responses"].values() for ref in _refs(answer)]
    done: set[str] = {"Error"}
    while pending:
        name = pending.pop().rsplit("/", 1)[-1]
        if name in done:
            continue
        done.add(name)
        schemas[name]["required"] = sorted(schemas[name].get("properties", {}))
        pending.extend(_refs(schemas[name]))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _operation(spec: APISpec, view: Callable, contract: dict[str, Any], path_args: set[str]) -> dict[str, Any]:
    doc = (view.__doc__ or "").strip().splitlines()
    area = view.__module__.rsplit(".", 1)[-1]
    operation: dict[str, Any] = {
        "summary": doc[0] if doc else view.__name__,
        "operationId": f"{area}_{view.__name__}",  # unique across areas, and named by it in generated clients
        "tags": [area],
        "parameters": [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                       for name in sorted(path_args)],
        "responses": {
            str(contract.get("status", 200)): _envelope_response(spec, contract.get("response")),
            **{str(code): _envelope_response(spec, cls) for code, cls in contract.get("also", {}).items()},
            **_error_responses([*contract.get("errors", ()), *_pipeline_codes(view, contract, path_args)]),
            "default": {"description": "Any other error: " + _described(codes.INTERNAL_ERROR),
                        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}},
        },
    }
    for location, where in (("query", "query"), ("headers", "header")):
        if location in contract:
            operation["parameters"].append({"in": where, "schema": contract[location]})
    if "form" in contract:
        operation["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": contract["form"]}}}
    if "json" in contract:
        body_schema = contract["json"]
        # else an empty body is {}; a body with either/or fields (EXACTLY_ONE) always needs one
        required = any(field.required for field in body_schema().fields.values()) or hasattr(body_schema, "EXACTLY_ONE")
        operation["requestBody"] = {"required": required, "content": {"application/json": {"schema": body_schema}}}
    if contract.get("auth"):
        operation["security"] = [{"bearerAuth": []}]
    extra = dict(contract.get("extra", {}))
    given = {(parameter["in"], parameter["name"]) for parameter in extra.get("parameters", [])}
    operation["parameters"] = [parameter for parameter in operation["parameters"]
                               if (parameter.get("in"), parameter.get("name")) not in given]
    operation["parameters"] += extra.pop("parameters", [])
    operation["responses"].update(extra.pop("replace_responses", {}))  # an answer that is not the envelope
    for status, answer in extra.pop("responses", {}).items():  # another media type beside the envelope
        existing = operation["responses"].setdefault(status, {})
        existing.setdefault("content", {}).update(answer.get("content", {}))
        existing.update({key: value for key, value in answer.items() if key != "content"})
    operation.update(extra)
    return operation


def _envelope_response(spec: APISpec, schema_cls: type[Schema] | None) -> dict[str, Any]:
    """The success envelope around schema_cls, one named component per schema: a create's 201 and
    its replay's 200 are then one type in a generated client."""
    name, data = "Empty", {"type": "null"}
    if schema_cls is not None:
        name = schema_cls.__name__.removesuffix("Schema") or schema_cls.__name__
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema_cls)
        data = {"$ref": f"#/components/schemas/{name}"}
    envelope = f"{name}Envelope"
    if envelope not in spec.components.schemas:
        spec.components.schema(envelope, {"type": "object", "required": ["code", "data", "msg"], "properties": {
            "code": {"type": "integer", "enum": [codes.SUCCESS.code]}, "data": data, "msg": {"type": "string"}}})
    return {"description": "Success envelope",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{envelope}"}}}}


def _pipeline_codes(view: Callable, contract: dict[str, Any], path_args: set[str]) -> list[Code]:
    """The codes the request pipeline answers for what the operation has: a body, a token, a limit."""
    found = [codes.SERVICE_UNAVAILABLE]  # a database or Redis outage: every operation but the catalog meets one
    found += [codes.URI_TOO_LONG, codes.HEADER_TOO_LARGE]  # the app's own limits, met by any request
    if path_args:
        found.append(codes.NOT_FOUND)  # a value with a slash in it matches no route
    if contract.keys() & {"json", "query", "headers"}:
        found.append(codes.VALIDATION_ERROR)
    if "json" in contract:
        found.extend(BODY_CODES)
    if contract.get("auth"):
        found.extend(TOKEN_CODES)
    if contract.get("step_up"):
        found.append(codes.AUTH_REAUTH_REQUIRED)
    if limiter.limit_manager.decorated_limits(get_qualified_name(view)):
        found.append(codes.RATE_LIMITED)
    return found


def _error_responses(found: Iterable[Code]) -> dict[str, Any]:
    """One response per HTTP status: the Error envelope, its code one of those the status lists."""
    by_status: dict[int, set[Code]] = {}
    for code in found:
        by_status.setdefault(code.status, set()).add(code)
    responses = {}
    for status, group in sorted(by_status.items()):
        ordered = sorted(group, key=lambda code: code.code)
        responses[str(status)] = {
            "description": "; ".join(_described(code) for code in ordered),
            "content": {"application/json": {"schema": {"allOf": [
                {"$ref": ERROR_REF}, {"properties": {"code": {"enum": [code.code for code in ordered]}}}]}}}}
    return responses


def _described(code: Code) -> str:
    return f"{code.code} {MESSAGE_PARAM.sub('N', str(code.message))}"
