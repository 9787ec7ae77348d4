"""An unexpected exception is masked as "Unexpected error." with the code INTERNAL (a 500
on REST), never mistaken for a validation error of the client's request (a 400)."""

from __future__ import annotations

import strawberry

from app.domain.errors import NotFound
from app.graphql.errors import ErrorCodes, LoggedErrorsSchema, MaskUnexpectedErrors
from rest_compat.envelope import http_status


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("a secret detail of the server")

    @strawberry.field
    def missing(self) -> int:
        raise NotFound("job 'j-1' not found")


schema = LoggedErrorsSchema(query=Query, extensions=[ErrorCodes, MaskUnexpectedErrors])


async def test_an_unexpected_error_is_masked_with_the_code_internal():
    result = await schema.execute("{ broken }")
    [error] = result.errors
    assert error.message == "Unexpected error."
    assert error.extensions == {"code": "INTERNAL"}
    assert http_status(error.extensions["code"]) == 500


async def test_a_domain_error_keeps_its_message_and_code():
    result = await schema.execute("{ missing }")
    [error] = result.errors
    assert "not found" in error.message
    assert error.extensions["code"] == "NOT_FOUND"
