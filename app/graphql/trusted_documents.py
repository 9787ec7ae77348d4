"""Documents parsed and validated once, at start-up (the REST facade's operations).

Executing one of them skips both parsing and validation: the extension installs the
stored DocumentNode when the query text is a registered one. A client that posts the
very same text gets the same shortcut, which is safe: it is the same validated document."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

_documents: dict[str, DocumentNode] = {}


def trust(text: str, document: DocumentNode) -> None:
    """Register `document` (parsed from `text`, already validated against the schema)."""
    _documents[text] = document


def forget_all() -> None:
    """For measurements: execute everything the ordinary way again."""
    _documents.clear()


class TrustedDocuments(SchemaExtension):
    """Must come after ParserCache and ValidationCache in the extension list: hooks run
    in list order, and this one has the last word on the document and its errors."""

    def on_parse(self) -> Iterator[None]:
        document = _documents.get(self.execution_context.query or "")
        if document is not None:
            self.execution_context.graphql_document = document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = _documents.get(context.query or "")
        if document is not None and document is context.graphql_document:
            context.pre_execution_errors = []  # strawberry skips validation when set
        yield
