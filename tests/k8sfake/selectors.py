"""Label and field selectors (k8s.io/apimachinery/pkg/labels, pkg/fields).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import StatusError, bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")

Requirement = Callable[[dict[str, str]], bool]


def _check_key(key: str, selector: str) -> None:
    if not _KEY_RE.match(key) or key.count("/") > 1:
        raise bad_request(f"unable to parse requirement: invalid label key \"{key}\": "
                          f"name part must consist of alphanumeric characters, '-', '_' or '.', "
                          f"and must start and end with an alphanumeric character")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise bad_request(f"unable to parse requirement: values[0][{value}]: Invalid value: "
                          f"\"{value}\": a valid label must be an empty string or consist of "
                          f"alphanumeric characters, '-', '_' or '.', and must start and end with "
                          f"an alphanumeric character")


def _split_top(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request("unable to parse requirement: found ')', expected: "
                                  "identifier or '('")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise bad_request("unable to parse requirement: found '', expected: ')'")
    parts.append(cur)
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|!=|=)\s*(\S*)\s*$")


def parse_label_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Full label selector grammar; malformed → 400 BadRequest."""
    if not selector or not selector.strip():
        return lambda labels: True
    reqs: list[Requirement] = []
    for raw in _split_top(selector):
        part = raw.strip()
        if not part:
            raise bad_request("unable to parse requirement: found '', expected: "
                              "identifier")
        m = _SET_RE.match(part)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            _check_key(key, selector)
            values = {v.strip() for v in vals.split(",")} if vals.strip() else set()
            if not values:
                raise bad_request("unable to parse requirement: for 'in', 'notin' operators, "
                                  "values set can't be empty")
            for v in values:
                _check_value(v)
            if op == "in":
                reqs.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                reqs.append(lambda labels, k=key, vs=values: k not in labels or labels[k] not in vs)
            continue
        m = _EQ_RE.match(part)
        if m:
            key, op, value = m.groups()
            _check_key(key, selector)
            _check_value(value)
            if op == "!=":
                reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                reqs.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, selector)
            reqs.append(lambda labels, k=key: k not in labels)
            continue
        if " " not in part and not any(c in part for c in "=()<>"):
            _check_key(part, selector)
            reqs.append(lambda labels, k=part: k in labels)
            continue
        raise bad_request(f"unable to parse requirement: found '{part}', expected: "
                          f"in, notin, =, ==, !=, gt, lt")
    return lambda labels: all(r(labels) for r in reqs)


# --- field selectors ------------------------------------------------------------------------

def _get(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _event_source(obj: dict[str, Any]) -> str:
    comp = _get(obj, "source.component")
    return _str(comp) if comp else _str(obj.get("reportingController"))


FIELD_GETTERS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "events": {
        **{f"involvedObject.{f}": (lambda o, f=f: _str(_get(o, f"involvedObject.{f}")))
           for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                     "fieldPath")},
        "reason": lambda o: _str(o.get("reason")),
        "reportingComponent": lambda o: _str(o.get("reportingComponent")),
        "type": lambda o: _str(o.get("type")),
        "source": _event_source,
    },
    "pods": {
        "spec.nodeName": lambda o: _str(_get(o, "spec.nodeName")),
        "spec.restartPolicy": lambda o: _str(_get(o, "spec.restartPolicy")),
        "spec.schedulerName": lambda o: _str(_get(o, "spec.schedulerName")),
        "spec.serviceAccountName": lambda o: _str(_get(o, "spec.serviceAccountName")),
        "spec.hostNetwork": lambda o: _str(bool(_get(o, "spec.hostNetwork"))),
        "status.phase": lambda o: _str(_get(o, "status.phase")),
        "status.podIP": lambda o: _str(_get(o, "status.podIP")),
        "status.podIPs": lambda o: _str((_get(o, "status.podIPs") or [{}])[0].get("ip")),
        "status.nominatedNodeName": lambda o: _str(_get(o, "status.nominatedNodeName")),
    },
    "jobs": {
        "status.successful": lambda o: _str(_get(o, "status.succeeded") or 0),
    },
    "services": {},
    # pkg/registry/core/node/strategy.go NodeToSelectableFields.
    "nodes": {"spec.unschedulable": lambda o: _str(bool(_get(o, "spec.unschedulable")))},
    # CRDs: metadata.name and metadata.namespace only (no selectableFields in either CRD).
    "workloads": {},
    "podgroups": {},
}
for _getters in FIELD_GETTERS.values():
    _getters["metadata.name"] = lambda o: _str(_get(o, "metadata.name"))
    _getters["metadata.namespace"] = lambda o: _str(_get(o, "metadata.namespace"))


def parse_field_selector(selector: str | None, resource: str) -> Callable[[dict[str, Any]], bool]:
    """``=``, ``==``, ``!=`` ANDed by commas; unknown field → 400 'field label not supported'."""
    if not selector or not selector.strip():
        return lambda obj: True
    getters = FIELD_GETTERS.get(resource, {})
    reqs: list[Callable[[dict[str, Any]], bool]] = []
    for raw in selector.split(","):
        part = raw.strip()
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        getter = getters.get(field)
        if getter is None:
            raise bad_request(f"field label not supported: {field}")
        if op == "!=":
            reqs.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            reqs.append(lambda o, g=getter, v=value: g(o) == v)
    return lambda obj: all(r(obj) for r in reqs)


def matcher(resource: str, label_selector: str | None,
            field_selector: str | None) -> Callable[[dict[str, Any] | None], bool]:
    by_label = parse_label_selector(label_selector)
    by_field = parse_field_selector(field_selector, resource)

    def match(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        return by_label(obj.get("metadata", {}).get("labels") or {}) and by_field(obj)

    return match


__all__ = ["StatusError", "matcher", "parse_field_selector", "parse_label_selector"]
