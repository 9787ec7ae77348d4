"""A GitHub-style cost limit: each object a query can return costs one, and page sizes
multiply down the tree (`jobs(first: 100) { nodes { pods { name } } }` costs 100 jobs plus
100 × the pods of each). The cost is reported in `extensions.cost`; a query over the limit
is refused before it runs."""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from app.domain.errors import QueryTooExpensive
from app.domain.listing import DEFAULT_PAGE_SIZE

DEFAULT_MAX_COST = 25_000
# What a plain (unpaginated) list is assumed to hold: pods of a job, events of a job.
LIST_ESTIMATE = 10
# Fields that do real work per object beyond a row (reading a log file or a pod's log).
FIELD_WEIGHTS = {"logs": 10}


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


class _Costing:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection(self, parent: GraphQLObjectType, selections: SelectionSetNode | None, multiplier: int, seen: frozenset[str] = frozenset()) -> int:
        if selections is None:
            return 0
        total = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                total += self.field(parent, node, multiplier, seen)
            elif isinstance(node, InlineFragmentNode):
                target = self.schema.get_type(node.type_condition.name.value) if node.type_condition else parent
                total += self.selection(target, node.selection_set, multiplier, seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selection(target, fragment.selection_set, multiplier, seen | {node.name.value})
        return total

    def field(self, parent: GraphQLObjectType, node: FieldNode, multiplier: int, seen: frozenset[str]) -> int:
        definition = parent.fields.get(node.name.value) if hasattr(parent, "fields") else None
        if definition is None:
            return 0
        weight = FIELD_WEIGHTS.get(node.name.value, 0) * multiplier
        type_, is_list = _unwrap(definition.type)
        if not isinstance(type_, GraphQLObjectType):
            return weight
        if "first" in definition.args:
            size = self._argument(node, "first", definition.args["first"].type) or DEFAULT_PAGE_SIZE
            # The connection object itself; its edges and nodes lists hold `size` each.
            return weight + multiplier + self.selection(type_, node.selection_set, multiplier * size, seen)
        if is_list and parent.name.endswith("Connection"):
            size = 1  # edges / nodes: already counted by the connection's page size
        else:
            size = LIST_ESTIMATE if is_list else 1
        count = multiplier * size
        return weight + count + self.selection(type_, node.selection_set, count, seen)

    def _argument(self, node: FieldNode, name: str, type_: Any) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value == name:
                value = value_from_ast(argument.value, type_, self.variables)
                return value if isinstance(value, int) and value > 0 else None
        return None


def query_cost(schema: GraphQLSchema, document, variables: dict[str, Any] | None, operation_name: str | None) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    costing = _Costing(schema, fragments, variables or {})
    total = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name and definition.name and definition.name.value != operation_name:
            continue
        root = schema.get_root_type(definition.operation)
        total += costing.selection(root, definition.selection_set, 1)
    return total


class QueryCost(SchemaExtension):
    """Computes the cost after validation and refuses the operation when over the limit."""

    def __init__(self, *, max_cost: int | None = None) -> None:
        self.max_cost = max_cost
        self.cost: int | None = None

    def _limit(self) -> int:
        if self.max_cost is not None:
            return self.max_cost
        services = getattr(self.execution_context.context, "services", None)
        return getattr(getattr(services, "settings", None), "max_query_cost", DEFAULT_MAX_COST)

    def on_execute(self):
        context = self.execution_context
        if context.graphql_document is not None and not context.result:
            self.cost = query_cost(
                context.schema._schema, context.graphql_document, context.variables, context.operation_name
            )
            if self.cost > self._limit():
                error = QueryTooExpensive(
                    f"query cost {self.cost} exceeds the limit of {self._limit()}: ask for "
                    "smaller pages (first) or fewer nested lists"
                )
                context.result = ExecutionResult(
                    data=None, errors=[GraphQLError(error.message, original_error=error)]
                )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requestedQueryCost": self.cost, "maximumAvailable": self._limit()}}
