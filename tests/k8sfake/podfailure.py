"""A Job's ``podFailurePolicy``: validation and matching, as kubernetes does it.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Matching is kubernetes pkg/controller/job/pod_failure_policy.go (matchPodFailurePolicy,
matchOnExitCodes, matchOnPodConditions): rules in order, the first that matches decides;
``onExitCodes`` looks at terminated containers with a non-zero exit code only
(``containerStatuses`` first, then ``initContainerStatuses``); ``onPodConditions`` needs a
condition of that type and status. Validation is pkg/apis/batch/validation/validation.go
(validatePodFailurePolicy and its rules); ``FailIndex`` needs ``backoffLimitPerIndex``, which the
fake does not implement, so it is refused.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .errors import FieldError

ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
OPERATORS = ["In", "NotIn"]
MAX_RULES = 20
MAX_VALUES = 255
MAX_PATTERNS = 20


def validate(job: dict[str, Any]) -> list[FieldError]:
    spec = job.get("spec") or {}
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return []
    path = "spec.podFailurePolicy"
    errs: list[FieldError] = []
    template = (spec.get("template") or {}).get("spec") or {}
    if template.get("restartPolicy") != "Never":
        errs.append(errors.invalid("spec.template.spec.restartPolicy",
                                   template.get("restartPolicy"),
                                   'only "Never" is supported when podFailurePolicy is specified'))
    rules = policy.get("rules") or []
    if len(rules) > MAX_RULES:
        errs.append(errors.too_many(f"{path}.rules", len(rules), MAX_RULES))
    containers = {c.get("name") for c in template.get("containers") or []}
    containers |= {c.get("name") for c in template.get("initContainers") or []}
    for i, rule in enumerate(rules):
        rpath = f"{path}.rules[{i}]"
        action = rule.get("action")
        if action not in ACTIONS:
            errs.append(errors.not_supported(f"{rpath}.action", action, ACTIONS))
        elif action == "FailIndex":
            errs.append(errors.forbidden(f"{rpath}.action",
                                         "requires the backoffLimitPerIndex to be set"))
        exit_codes, conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if (exit_codes is None) == (conditions is None):
            errs.append(errors.invalid(rpath, "", "specifying one of OnExitCodes and "
                                       "OnPodConditions is required"))
        if exit_codes is not None:
            epath = f"{rpath}.onExitCodes"
            name = exit_codes.get("containerName")
            if name is not None and name not in containers:
                errs.append(errors.invalid(f"{epath}.containerName", name,
                                           "must be one of the container or initContainer names "
                                           "in the pod template"))
            operator = exit_codes.get("operator")
            if operator not in OPERATORS:
                errs.append(errors.not_supported(f"{epath}.operator", operator, OPERATORS))
            values = exit_codes.get("values") or []
            if not values:
                errs.append(errors.invalid(f"{epath}.values", values,
                                           "at least one value is required"))
            if len(values) > MAX_VALUES:
                errs.append(errors.too_many(f"{epath}.values", len(values), MAX_VALUES))
            for j, v in enumerate(values):
                if operator == "In" and v == 0:
                    errs.append(errors.invalid(f"{epath}.values[{j}]", v,
                                               "must not be 0 for the In operator"))
                if j and values[j - 1] >= v:
                    errs.append(errors.invalid(f"{epath}.values[{j}]", v,
                                               "must be ordered" if values[j - 1] > v
                                               else "duplicate value"))
        if conditions is not None:
            if len(conditions) > MAX_PATTERNS:
                errs.append(errors.too_many(f"{rpath}.onPodConditions", len(conditions),
                                            MAX_PATTERNS))
            for j, pattern in enumerate(conditions):
                cpath = f"{rpath}.onPodConditions[{j}]"
                if pattern.get("status") not in ("True", "False", "Unknown"):
                    errs.append(errors.not_supported(f"{cpath}.status", pattern.get("status"),
                                                     ["False", "True", "Unknown"]))
                if not pattern.get("type"):
                    errs.append(errors.required(f"{cpath}.type"))
    return errs


def default(job: dict[str, Any]) -> None:
    """pkg/apis/batch/v1/defaults.go: a pattern's status defaults to True; with a policy the
    pods are replaced only once they have failed (podReplacementPolicy: Failed)."""
    spec = job.get("spec") or {}
    policy = spec.get("podFailurePolicy")
    if not policy:
        return
    for rule in policy.get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            pattern.setdefault("status", "True")
    spec.setdefault("podReplacementPolicy", "Failed")


def match(policy: dict[str, Any] | None, pod: dict[str, Any]) -> tuple[str | None, bool, str | None]:
    """(FailJob message, count towards backoffLimit, matched action) for a failed pod."""
    if not policy:
        return None, True, None
    status = pod.get("status") or {}
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            container = _matching_container(status, rule["onExitCodes"])
            if container is None:
                continue
            if action == "FailJob":
                code = container["state"]["terminated"]["exitCode"]
                message = (f"Container {container['name']} for pod "
                           f"{meta['namespace']}/{meta['name']} failed with exit code {code} "
                           f"matching FailJob rule at index {index}")
                return message, True, action
        elif rule.get("onPodConditions") is not None:
            cond = _matching_condition(status, rule["onPodConditions"])
            if cond is None:
                continue
            if action == "FailJob":
                message = (f"Pod {meta['namespace']}/{meta['name']} has condition "
                           f"{cond['type']} matching FailJob rule at index {index}")
                return message, True, action
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "Count":
            return None, True, action
        # Unknown actions: "Clients should react to an unknown action by skipping the rule"
        # (the API's comment); the controller's switch falls through to the next rule.
    return None, True, None


def _matching_container(status: dict[str, Any], req: dict[str, Any]) -> dict[str, Any] | None:
    for statuses in (status.get("containerStatuses"), status.get("initContainerStatuses")):
        for cs in statuses or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if not terminated:
                continue  # still terminating: no exit code to match
            if req.get("containerName") not in (None, cs.get("name")):
                continue
            code = terminated.get("exitCode", 0)
            if code == 0:
                continue
            values = req.get("values") or []
            if (req.get("operator") == "In" and code in values) or (
                    req.get("operator") == "NotIn" and code not in values):
                return cs
    return None


def _matching_condition(status: dict[str, Any], patterns: list[dict[str, Any]]) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                    "status", "True"):
                return cond
    return None
