"""The HTTP API's OpenAPI 3.1 document: valid for an independent validator, shipped as generated, served by the
app, and never contradicted by the live app (schemathesis generates requests from it against real services).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from api.endpoints import OPERATIONS, PREFIX
from api.openapi import openapi_document

from factories import Tenant, make_merchant, make_tenant, opt
from http_api_support import key_headers, running_api
from support import REPO

#: Examples per operation and mode (16 operations, positive and negative): about 20-30 seconds in all.
EXAMPLES = 8
#: Bulk consents answer each row on its own (the contract's consent.bulk_upsert.v1): a row the document would
#: reject is answered REFUSED with its catalogue code inside a 200, so "invalid data must be rejected" is not
#: asked of it. Every other check still runs on it.
PER_ROW_ANSWERS = {"POST /api/v1/consents/bulk"}


def test_document_is_valid_openapi_3_1_for_an_independent_validator() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate(document)  # openapi-spec-validator: raises on any violation of the 3.1 schema
    assert {(op.method.lower(), PREFIX + op.path) for op in OPERATIONS} == {
        (method, path) for path, item in document["paths"].items() for method in item}


def test_request_bodies_leave_out_what_the_door_fills_in() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for name in ("V1OmniSmsSendRequest", "V1MerchantUpsertRequest", "V1MerchantConsentRequest"):
        assert "auth" not in schemas[name]["properties"] and "idempotencyKey" not in schemas[name]["properties"]
    assert "message" in schemas["V1OmniSmsSendRequest"]["properties"]  # seed 003's name for body


def test_shipped_json_and_yaml_are_the_generated_document() -> None:
    """`hexavox contract --write schema/contract` regenerates them; a model change without it fails here."""
    document = openapi_document()
    assert json.loads((REPO / "schema" / "openapi.json").read_text()) == document
    assert yaml.safe_load((REPO / "schema" / "openapi.yaml").read_text()) == document


@pytest.fixture
def seeded(hexavox_env: dict[str, str]) -> Tenant:
    tenant = make_tenant()
    make_merchant(tenant, "gym-a", sms=100_000, voice=100_000, email=100_000)
    opt(tenant, "gym-a", "SMS", "+18135551234")
    return tenant


@pytest.fixture
def live(seeded: Tenant) -> Iterator[str]:
    with running_api() as base_url:
        yield base_url


def test_app_serves_the_document_and_an_interactive_docs_page(live: str) -> None:
    document = httpx.get(f"{live}{PREFIX}/openapi.json")
    docs = httpx.get(f"{live}{PREFIX}/docs")
    assert document.status_code == 200 and document.json() == openapi_document()
    assert docs.status_code == 200 and "swagger-ui" in docs.text and f"{PREFIX}/openapi.json" in docs.text


def _checks(*, strict: bool) -> list[Any]:
    from schemathesis.checks import (
        content_type_conformance,
        ignored_auth,
        negative_data_rejection,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance, ignored_auth]
    return [*checks, negative_data_rejection] if strict else checks


def _describe(err: BaseException) -> str:
    """The failure's own text (a group's sub-failures too), short enough to read in a test report."""
    parts = [str(err)]
    if isinstance(err, BaseExceptionGroup):
        parts += [str(sub) for sub in err.exceptions]
    return " | ".join(parts)[:900]


def _fuzz(operation: Any, mode: Any, base_url: str, headers: dict[str, str], checks: list[Any]) -> str | None:
    """Run one operation's examples in one generation mode; its first failure, described, or None."""
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def exercise(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=30)

    try:
        exercise()
    except (Exception, BaseExceptionGroup) as err:
        return f"{operation.label} [{mode.value}]: {_describe(err)}"
    return None


def test_schemathesis_finds_no_5xx_and_no_answer_contradicting_the_document(live: str, seeded: Tenant) -> None:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    schema = schemathesis.openapi.from_dict(openapi_document())
    failures = []
    for result in schema.get_all_operations():  # every operation's first failure, not only the first operation's
        assert isinstance(result, Ok), result.err()  # an operation the document describes unusably
        operation = result.ok()
        checks = _checks(strict=operation.label not in PER_ROW_ANSWERS)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures.append(_fuzz(operation, mode, live, key_headers(seeded), checks))
    found = [failure for failure in failures if failure]
    assert not found, "\n\n".join(found[:10])
