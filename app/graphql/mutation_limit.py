"""Each mutation of a request counts against the caller's rate limit: twenty aliased
`createJob` fields are twenty units, not one request."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from app.domain.errors import RateLimited


def _root_fields(selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]) -> int:
    count = 0
    # Only root-level selections are walked, and each fragment once per spread: the
    # fan-out guard has already bounded how far spreads can multiply.
    stack = [selections]
    while stack:
        for node in stack.pop().selections:
            if isinstance(node, FieldNode):
                count += not node.name.value.startswith("__")
            elif isinstance(node, InlineFragmentNode):
                stack.append(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
                stack.append(fragments[node.name.value].selection_set)
    return count


def mutation_count(document: DocumentNode, operation_name: str | None) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name and (definition.name is None or definition.name.value != operation_name):
            continue
        if definition.operation is not OperationType.MUTATION:
            return 0
        return _root_fields(definition.selection_set, fragments)
    return 0


class MutationRateLimit(SchemaExtension):
    """Charges the mutations beyond the first before any of them runs (all or none)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        caller = context.context
        principal = getattr(caller, "principal", None)
        if context.graphql_document is not None and not context.result and principal is not None:
            count = mutation_count(context.graphql_document, context.operation_name)
            if count > 1:
                try:
                    caller.services.identity.charge(principal, units=count - 1)
                except RateLimited as error:
                    context.result = ExecutionResult(
                        data=None, errors=[GraphQLError(error.message, original_error=error)]
                    )
        yield
