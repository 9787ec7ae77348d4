"""Parsing and validation paid once per document text, not once per request.

A document (the query text) is parsed, checked for fragment fan-out and validated the
first time it is seen; later requests with the same text reuse the result. The REST
facade's operations are registered at start-up (`trust`) and never evicted; other texts
live in a bounded LRU, so clients sending ever-new texts cannot grow memory. The query
cost of a document is remembered here too (`QueryCost` reads and fills `costs`).

Keys are the text itself: hashing a str is cached by Python, whereas graphql-core's
nodes are dataclasses whose hash walks the whole tree on every lookup."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from app.graphql.fanout import fanout_error
from app.graphql.kept_answers import keepable

MAX_CACHED_DOCUMENTS = 256
# Costs remembered per document: one per operation and set of page-size variables.
MAX_COSTS_PER_DOCUMENT = 64


@dataclass(slots=True)
class Document:
    document: DocumentNode
    errors: list[GraphQLError] | None = None  # None: not validated yet
    costs: dict[Any, int] = field(default_factory=dict)
    keepable: bool | None = None  # whether its answers may be kept (None: not checked yet)

    def remember_cost(self, key: Any, cost: int) -> None:
        if len(self.costs) >= MAX_COSTS_PER_DOCUMENT:
            self.costs.pop(next(iter(self.costs)))
        self.costs[key] = cost


_trusted: dict[str, Document] = {}
_recent: OrderedDict[str, Document] = OrderedDict()


def trust(text: str, document: DocumentNode) -> None:
    """Register `document` (parsed from `text`, already validated against the schema)."""
    _trusted[text] = Document(document=document, errors=[])


def forget_all() -> None:
    """For measurements: parse and validate everything again."""
    _trusted.clear()
    _recent.clear()


def lookup(text: str) -> Document | None:
    known = _trusted.get(text)
    if known is None:
        known = _recent.get(text)
        if known is not None:
            _recent.move_to_end(text)
    return known


def _remember(text: str, document: DocumentNode) -> Document:
    entry = Document(document=document)
    _recent[text] = entry
    while len(_recent) > MAX_CACHED_DOCUMENTS:
        _recent.popitem(last=False)
    return entry


def check(schema: Any, entry: Document, rules: Any) -> list[GraphQLError]:
    """The document's validation errors, computed once. A document whose fragments fan
    out is refused before any rule runs (several rules would take exponential time)."""
    if entry.errors is None:
        refused = fanout_error(entry.document)
        entry.errors = [refused] if refused else validate_document(schema, entry.document, rules)
    return entry.errors


class DocumentCache(SchemaExtension):
    """Replaces Strawberry's ParserCache and ValidationCache: keyed by text, with the
    fan-out guard before validation, and the facade's documents pinned."""

    def __init__(self) -> None:
        self.entry: Document | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if text is not None and context.graphql_document is None:
            entry = lookup(text)
            if entry is None:
                # A syntax error propagates as with ParserCache (no entry is kept for it).
                entry = _remember(text, parse(text, **context.parse_options))
            self.entry = entry
            context.graphql_document = entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.entry is not None and context.pre_execution_errors is None:
            context.pre_execution_errors = check(
                context.schema._schema, self.entry, context.validation_rules
            )
        yield


def keeps_answers(schema: Any, text: str) -> bool:
    """Whether answers to the document of `text` (seen and valid) may be kept; checked
    once per document."""
    entry = lookup(text)
    if entry is None or entry.errors != []:
        return False
    if entry.keepable is None:
        entry.keepable = keepable(schema, entry.document)
    return entry.keepable


def current(context: Any) -> Document | None:
    """The cached entry of the document this execution runs, if it came from the cache."""
    text = getattr(context, "query", None)
    return lookup(text) if text is not None else None
