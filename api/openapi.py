"""The OpenAPI 3.1 document of the API, generated from the endpoint table and the pydantic models.

Request bodies are the queue contract's models (the JSON Schemas shipped in ``schema/contract/``) without the fields
the door fills in: ``auth`` (credentials travel in headers) and ``idempotencyKey`` (the Idempotency-Key header).
The SMS body also takes seed 003's ``message`` for the contract's ``body``. ``hexavox contract --write`` writes the
document as ``openapi.json`` and ``openapi.yaml`` next to the JSON Schemas' folder.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.endpoints import OPERATIONS, PREFIX, Operation
from api.models import PATH_FIELDS, REQUESTS, RESPONSES
from api.status import ERROR_STATUSES

__all__ = ["openapi_document", "write_openapi"]

_REF = "#/components/schemas/{model}"
#: Filled in by the door from headers, so not part of an HTTP body.
_DOOR_FIELDS = ("auth", "idempotencyKey")
_ERROR_TEXT = {401: "Unknown key or wrong secret (E801)", 402: "Not enough units (E808)",
               403: "The key's rules, IP allowlist (E840) or the merchant's policy refuse it", 404: "Not found",
               405: "Method not allowed", 409: "Idempotency-Key reused with another payload (E809), or a conflict",
               413: "Body too large (E841) or too many recipients (E828)", 415: "Not JSON (E844)",
               422: "Validation: the catalogue code of the first rule broken",
               429: "The key's request rate (E843); see Retry-After", 503: "Internal error (E103); send it again"}


def _request_schema(name: str, model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    for def_name, definition in schema.pop("$defs", {}).items():
        if def_name != "Credentials":
            components.setdefault(def_name, definition)
    door_fields = (*_DOOR_FIELDS, *PATH_FIELDS.get(name, ()))
    for door_field in door_fields:
        schema.get("properties", {}).pop(door_field, None)
    if "required" in schema:
        schema["required"] = [r for r in schema["required"] if r not in door_fields]
    if name == "V1OmniSmsSendRequest":
        message = copy.deepcopy(schema["properties"]["body"])
        message["description"] = "The message text (seed 003's name for body; send one of the two)."
        schema["properties"]["message"] = message
    schema["title"] = name
    return schema


def _components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for name, model in REQUESTS.items():
        components[name] = _request_schema(name, model, components)
    _, answers = models_json_schema([(model, "serialization") for model in RESPONSES], by_alias=True,
                                    ref_template=_REF)
    components.update(answers.get("$defs", {}))
    return components


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(op: Operation) -> dict[str, Any]:
    answer: dict[str, Any] = {"$ref": _REF.format(model=op.answer.__name__)}
    if op.many:
        answer = {"type": "array", "items": answer}
    out: dict[str, Any] = {str(op.status): _json(answer, op.summary)}
    for status in ERROR_STATUSES:
        out[str(status)] = {"$ref": f"#/components/responses/Refused{status}"}
    return out


def _refusals() -> dict[str, Any]:
    """One shared response per refusal status: the ErrorBody, and Retry-After where the caller should wait."""
    error = {"$ref": _REF.format(model="ErrorBody")}
    responses = {f"Refused{status}": _json(error, _ERROR_TEXT.get(status, "Refused")) for status in ERROR_STATUSES}
    for status in (429, 503):
        responses[f"Refused{status}"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}
    return responses


def _operation(op: Operation) -> dict[str, Any]:
    parameters = [{"name": p.name, "in": p.where, "required": p.required, "schema": p.schema,
                   **({"description": p.description} if p.description else {})} for p in op.params]
    if op.writes:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                           "description": "Reuse it for a retried logical action: the first answer is returned."})
    spec: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
                            "parameters": parameters, "responses": _responses(op)}
    if op.request is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": _REF.format(model=op.request)}}}}
    return spec


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "HexaVox API", "version": "1.0.0",
                 "description": "Merchants, consents, messaging, billing and reports (seed 003). Authenticate with "
                                "X-API-KEY and X-API-SECRET; send an Idempotency-Key on every write. Errors carry "
                                "the catalogue code (code, name, detail, field)."},
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": [], "ApiSecret": []}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "responses": _refusals(),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
                                "ApiSecret": {"type": "apiKey", "in": "header", "name": "X-API-SECRET"}},
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())


def write_openapi(folder: Path) -> list[Path]:
    """Write the document as ``openapi.json`` and ``openapi.yaml`` into ``folder`` (Swagger downloads)."""
    import yaml

    document = openapi_document()
    as_json, as_yaml = folder / "openapi.json", folder / "openapi.yaml"
    as_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    as_yaml.write_text(yaml.safe_dump(document, sort_keys=True, allow_unicode=True))
    return [as_json, as_yaml]
