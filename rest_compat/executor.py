"""The REST routes' GraphQL operations: parsed and validated once at start-up, then
executed in-process against the one schema (through `schema.execute`, so errors get
the same codes, masking and logging as on /graphql)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    specified_rules,
    validate,
    visit,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.graphql.context import GraphQLContext
from app.graphql.documents import keeps_answers, trust
from app.graphql.schema import GUARD_RULES, schema

OPERATIONS_FILE = Path(__file__).with_name("operations.graphql")


class OperationsInvalid(RuntimeError):
    """The facade's documents do not fit the schema: the server must not start."""


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    type: OperationType
    text: str  # printed from `document`; the key under which it is trusted
    document: DocumentNode


def _spreads(node: Any) -> set[str]:
    names: set[str] = set()

    class Collect(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_: Any) -> None:
            names.add(spread.name.value)

    visit(node, Collect())
    return names


def _own_document(op: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> DocumentNode:
    """One operation with just the fragments it uses (transitively)."""
    needed: list[str] = []
    pending = sorted(_spreads(op))
    while pending:
        name = pending.pop()
        if name in needed or name not in fragments:
            continue
        needed.append(name)
        pending.extend(_spreads(fragments[name]))
    return DocumentNode(definitions=(op, *(fragments[n] for n in sorted(needed))))


def _check(document: DocumentNode, where: str) -> None:
    errors: list[GraphQLError] = validate(schema._schema, document, [*specified_rules, *GUARD_RULES])
    if errors:
        details = "\n  ".join(str(e) for e in errors)
        raise OperationsInvalid(f"{where} does not validate against the schema:\n  {details}")


class Operations:
    """The named operations of one document, each validated and trusted."""

    def __init__(self, operations: dict[str, Operation]) -> None:
        self._operations = operations

    @classmethod
    def load(cls, text: str, *, required: Iterable[str] = (), source: str = "operations") -> Operations:
        try:
            whole = parse(text)
        except GraphQLError as error:
            raise OperationsInvalid(f"{source} does not parse: {error}") from None
        _check(whole, source)
        fragments = {
            d.name.value: d for d in whole.definitions if isinstance(d, FragmentDefinitionNode)
        }
        operations: dict[str, Operation] = {}
        for definition in whole.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            if definition.name is None:
                raise OperationsInvalid(f"{source}: every operation needs a name")
            name = definition.name.value
            own = _own_document(definition, fragments)
            printed = print_ast(own)
            document = parse(printed)  # the trusted node is exactly what `printed` parses to
            _check(document, f"{source}: operation {name}")
            operations[name] = Operation(
                name=name, type=OperationType(definition.operation.value), text=printed,
                document=document,
            )
        missing = sorted(set(required) - operations.keys())
        if missing:
            raise OperationsInvalid(f"{source} lacks operations used by routes: {', '.join(missing)}")
        for operation in operations.values():
            trust(operation.text, operation.document)
        return cls(operations)

    @classmethod
    def load_file(cls, path: Path = OPERATIONS_FILE, *, required: Iterable[str] = ()) -> Operations:
        return cls.load(path.read_text(), required=required, source=str(path.name))

    def __getitem__(self, name: str) -> Operation:
        return self._operations[name]

    def keeps_answers(self, name: str) -> bool:
        """Whether the operation's answers may be kept (app/graphql/kept_answers.py)."""
        return keeps_answers(schema._schema, self._operations[name].text)

    def __iter__(self):
        return iter(self._operations.values())

    async def execute(
        self, name: str, *, variables: dict[str, Any], context: GraphQLContext
    ) -> ExecutionResult:
        operation = self._operations[name]
        return await schema.execute(
            operation.text,
            variable_values=variables,
            context_value=context,
            operation_name=operation.name,
            allowed_operation_types=(operation.type,),
        )

    async def subscribe(
        self, name: str, *, variables: dict[str, Any], context: GraphQLContext
    ) -> AsyncGenerator[ExecutionResult, None]:
        operation = self._operations[name]
        assert operation.type is OperationType.SUBSCRIPTION
        return await schema.subscribe(
            operation.text,
            variable_values=variables,
            context_value=context,
            operation_name=operation.name,
        )
