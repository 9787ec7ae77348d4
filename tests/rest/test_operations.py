"""The facade's operations are validated at start-up; a bad one stops the server."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from rest_compat.app import install
from rest_compat.executor import Operations, OperationsInvalid
from rest_compat.router import ROUTE_OPERATIONS


def test_every_route_operation_validates_against_the_schema():
    operations = Operations.load_file(required=ROUTE_OPERATIONS)
    assert {op.name for op in operations} >= set(ROUTE_OPERATIONS)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("query RestGetJob($jobId: ID!) { job(id: $jobId) { nope } }", "Cannot query field 'nope'"),
        ("query RestGetJob { job(id: 1) { jobId ", "does not parse"),
        ("query { jobs { totalCount } }", "needs a name"),
        ("query RestGetJob($jobId: ID!) { job(id: $jobId) { jobId } }", "lacks operations used by routes"),
    ],
)
def test_a_bad_document_refuses_to_load(text, words):
    with pytest.raises(OperationsInvalid, match=words):
        Operations.load(text, required=ROUTE_OPERATIONS)


def test_the_app_does_not_build_with_a_bad_operation(monkeypatch):
    broken = "query RestListJobs { jobs { wrongField } }"
    monkeypatch.setattr(Operations, "load_file", classmethod(lambda cls, **kw: cls.load(broken, **kw)))
    with pytest.raises(OperationsInvalid, match="wrongField"):
        install(FastAPI())
