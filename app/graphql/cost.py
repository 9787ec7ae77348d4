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
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from app.domain.errors import QueryTooExpensive
from app.domain.listing import DEFAULT_PAGE_SIZE
from app.graphql import documents

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
        # Variables the cost depended on (page sizes), so it can be cached per their values.
        self.consulted: dict[str, Any] = {}
        # The cost of each fragment at multiplier 1: costs are linear in the multiplier, so
        # a fragment spread many times (or fanned out through other fragments) is walked once.
        self._fragment_costs: dict[str, int] = {}

    def selection(self, parent: GraphQLNamedType | None, selections: SelectionSetNode | None, multiplier: int, seen: frozenset[str] = frozenset()) -> int:
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
                total += multiplier * self.fragment(node.name.value, seen)
        return total

    def fragment(self, name: str, seen: frozenset[str]) -> int:
        cost = self._fragment_costs.get(name)
        if cost is None:
            fragment = self.fragments.get(name)
            if fragment is None:
                return 0
            target = self.schema.get_type(fragment.type_condition.name.value)
            cost = self.selection(target, fragment.selection_set, 1, seen | {name})
            self._fragment_costs[name] = cost
        return cost

    def field(self, parent: GraphQLNamedType | None, node: FieldNode, multiplier: int, seen: frozenset[str]) -> int:
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0  # an unknown type: validation reports it
        definition = parent.fields.get(node.name.value)
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
                for variable in _variables_in(argument.value):
                    self.consulted[variable] = self.variables.get(variable)
                value = value_from_ast(argument.value, type_, self.variables)
                return value if isinstance(value, int) and value > 0 else None
        return None


def _variables_in(value: ValueNode) -> list[str]:
    if isinstance(value, VariableNode):
        return [value.name.value]
    return []


def query_cost(schema: GraphQLSchema, document, variables: dict[str, Any] | None, operation_name: str | None) -> int:
    return _query_cost(schema, document, variables, operation_name)[0]


def _query_cost(
    schema: GraphQLSchema, document, variables: dict[str, Any] | None, operation_name: str | None
) -> tuple[int, dict[str, Any]]:
    """The cost, and the variables (with their values) it depended on."""
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
    return total, costing.consulted


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def cached_query_cost(schema: GraphQLSchema, context: Any) -> int:
    """The cost of the execution's operation, computed once per document, operation and
    values of the page-size variables it depends on."""
    entry = documents.current(context)
    variables = context.variables or {}
    if entry is not None:
        for (operation, consulted), cost in entry.costs.items():
            if operation == context.operation_name and all(
                _hashable(variables.get(name)) == value for name, value in consulted
            ):
                return cost
    cost, consulted = _query_cost(schema, context.graphql_document, variables, context.operation_name)
    if entry is not None and entry.document is context.graphql_document:
        key = (context.operation_name, tuple((n, _hashable(v)) for n, v in consulted.items()))
        entry.remember_cost(key, cost)
    return cost


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
            self.cost = cached_query_cost(context.schema._schema, context)
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
