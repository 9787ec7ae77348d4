"""Refuse documents whose fragments multiply: `fragment A on Job { ...B ...B }`,
`fragment B on Job { ...C ...C }` ... is 1.7 KB of text for 2^40 fields. Validation rules
that walk fragments per spread (Strawberry's depth and alias limiters among them) would
take exponential time on it, so the size of the expanded document is computed first, once
per fragment, and a document over the limit is refused before any rule runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
)

# Far above any real query (the REST facade's largest expands to ~30 fields), far below
# what makes the validation rules slow (they are linear in it once it is bounded).
MAX_EXPANDED_FIELDS = 10_000


@dataclass(frozen=True, slots=True)
class _Body:
    """What one operation or fragment holds itself, and which fragments it spreads."""

    node: Node
    fields: int
    spreads: Counter[str]


def _body(node: OperationDefinitionNode | FragmentDefinitionNode) -> _Body:
    fields = 0
    spreads: Counter[str] = Counter()
    # An explicit stack: deep nesting must not meet Python's recursion limit.
    stack: list[SelectionSetNode] = [node.selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                fields += 1
                if selection.selection_set is not None:
                    stack.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                spreads[selection.name.value] += 1
    return _Body(node=node, fields=fields, spreads=spreads)


def _sizes(fragments: dict[str, _Body], limit: int) -> Iterator[GraphQLError | tuple[str, int]]:
    """Each fragment's expanded size (capped just over `limit`), in dependency order, or an
    error for a fragment that spreads itself (the walks would never end on it)."""
    done: dict[str, int] = {}
    for root in fragments:
        if root in done:
            continue
        # Iterative depth-first walk; `path` holds the fragments being expanded.
        path: list[tuple[str, Iterator[str]]] = [(root, iter(fragments[root].spreads))]
        on_path = {root}
        while path:
            name, pending = path[-1]
            child = next(pending, None)
            if child is None:
                body = fragments[name]
                size = body.fields + sum(
                    count * done.get(spread, 0) for spread, count in body.spreads.items()
                )
                done[name] = min(size, limit + 1)
                yield name, done[name]
                path.pop()
                on_path.discard(name)
            elif child in on_path:
                yield GraphQLError(
                    f"fragment {child!r} spreads itself (through "
                    f"{' -> '.join(n for n, _ in path)}): a fragment may not include itself",
                    fragments[child].node,
                )
                return
            elif child in fragments and child not in done:
                path.append((child, iter(fragments[child].spreads)))
                on_path.add(child)


def fanout_error(document: DocumentNode, *, limit: int = MAX_EXPANDED_FIELDS) -> GraphQLError | None:
    """Why `document` is refused before validation, or None. Linear in its text."""
    fragments: dict[str, _Body] = {}
    operations: list[_Body] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments.setdefault(definition.name.value, _body(definition))
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(_body(definition))
    sizes: dict[str, int] = {}
    for item in _sizes(fragments, limit):
        if isinstance(item, GraphQLError):
            return item
        sizes[item[0]] = item[1]
    for operation in operations:
        size = operation.fields + sum(
            count * sizes.get(spread, 0) for spread, count in operation.spreads.items()
        )
        if size > limit:
            largest = max(operation.spreads, key=lambda s: sizes.get(s, 0), default=None)
            through = f" (fragment {largest!r} alone expands to more)" if largest else ""
            return GraphQLError(
                f"the operation expands to more than {limit} fields through its fragments"
                f"{through}: spread fewer fragments, or each fragment fewer times",
                operation.node,
            )
    return None

