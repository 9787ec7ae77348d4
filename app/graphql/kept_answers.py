"""Which GraphQL answers may be kept in the core's AnswerCache (app/web/answer_cache.py
keeps them).

A document's answer may be kept only if every field it selects is read from what the
broker announces changes of: the jobs table (a job, a page of jobs, their pods, events
and waiting reasons). A document selecting anything else (`queuePosition`, which moves
when *other* jobs change, logs, pools, usage, the viewer, the audit log) is executed
every time. The allow-list is explicit, so a field added later is not kept until
someone adds it here knowing where it is read from.

Checked once per document text (the result lives with the parsed document)."""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

_JOB_FIELDS = frozenset({
    "jobId", "name", "status", "owner", "resourcePoolId", "queue", "image", "command",
    "replicas", "priority", "maxRetries", "timeoutSeconds", "createdAt", "startedAt",
    "finishedAt", "reason", "exitCode", "sharedWithGroups", "rerunOf", "held",
    "pendingReason", "resources", "envs", "labels", "config", "pods", "events",
})
KEPT_FIELDS: dict[str, frozenset[str]] = {
    "Query": frozenset({"job", "jobs"}),
    "Job": _JOB_FIELDS,
    "JobConnection": frozenset({"edges", "pageInfo", "nodes", "totalCount"}),
    "JobEdge": frozenset({"cursor", "node"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Pod": frozenset({
        "name", "phase", "replicaIndex", "nodeName", "exitCode", "restartCount", "reason",
        "startedAt", "finishedAt",
    }),
    "JobEvent": frozenset({"type", "reason", "message", "timestamp"}),
    "PendingReason": frozenset({"code", "message", "since"}),
    "EnvVar": frozenset({"name", "value"}),
    "Resources": frozenset({"cpus", "memory", "gpu"}),
}
# Directives that only select: any other (e.g. @defer) answers in parts, not kept.
_SELECTING_DIRECTIVES = frozenset({"include", "skip"})


def keepable(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """Whether answers to `document` (queries only, allow-listed fields only) may be kept."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            definition.operation is not OperationType.QUERY
        ):
            return False
    type_info = TypeInfo(schema)
    verdict = _Check(type_info)
    visit(document, TypeInfoVisitor(type_info, verdict))
    return verdict.kept


class _Check(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.kept = True

    def enter_field(self, node: FieldNode, *_: Any) -> Any:
        name = node.name.value
        if name == "__typename":
            return None
        parent = self.type_info.get_parent_type()
        if parent is None or name not in KEPT_FIELDS.get(parent.name, ()):
            self.kept = False
            return Visitor.BREAK
        return None

    def enter_directive(self, node: Any, *_: Any) -> Any:
        if node.name.value not in _SELECTING_DIRECTIVES:
            self.kept = False
            return Visitor.BREAK
        return None
