"""Schemathesis over /openapi.json against a real server: a few hundred generated
requests, none answered with a 5xx, every answer matching the response model its
operation declares (which FastAPI validates on the way out, too)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.web.app import create_app

# Up to 30 per operation (fewer where the inputs allow fewer), a dozen operations:
# about 270 cases, well under a minute.
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
async def fuzzed(server_factory):
    """A server of its own: generated creates run real (mostly unknown) commands."""
    server = await server_factory()
    token = server.token("fuzz")
    server.start()
    return server, token


# The document the app serves at /openapi.json, built without serving it so that the
# operations are known when tests are collected (schemathesis' lazy fixture loader does
# not work with pytest 9); test_the_served_document_is_the_one_fuzzed checks they agree.
DOCUMENT = create_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


async def test_the_served_document_is_the_one_fuzzed(fuzzed):
    server, _ = fuzzed
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        served = (await client.get("/openapi.json")).json()
    assert served == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a failure is reproducible
)
def test_no_5xx_and_answers_match_their_models(case, fuzzed):
    server, token = fuzzed
    response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
