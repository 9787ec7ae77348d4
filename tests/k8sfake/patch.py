"""PATCH bodies: RFC 6902 JSON patch, RFC 7386 merge patch, a strategic-merge subset.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Strategic merge patch here = RFC 7386 merge, except that the lists below are merged by key
(as the real Go structs' ``patchMergeKey`` tags say) and ``$patch: delete`` / ``$patch: replace``
list items are honoured.  Every other list is replaced, as the real server does for lists
without a merge strategy.  ``$retainKeys``, ``$setElementOrder`` and
``$deleteFromPrimitiveList`` are not implemented (400).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import StatusError, bad_request

# list field name -> merge key (k8s.io/api core/v1 & batch/v1 patchMergeKey tags)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "tolerations": None,  # atomic in practice
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "imagePullSecrets": "name",
}
# merge-by-value primitive lists
SET_LISTS = {"finalizers"}


# --- RFC 7386 -----------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge (subset) -----------------------------------------------------------------

def strategic_merge(target: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(patch, list):
        return _merge_list(target, patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if "$patch" in patch:
        directive = patch["$patch"]
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        raise bad_request(f"Unknown patch type: {directive}")
    for key in patch:
        if key.startswith(("$", "$setElementOrder/", "$deleteFromPrimitiveList/")):
            raise bad_request(f"the fake does not implement strategic merge directive {key}")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            merged = strategic_merge(result.get(key), value, key)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(target: Any, patch: list[Any], field: str | None) -> list[Any]:
    target = copy.deepcopy(target) if isinstance(target, list) else []
    if field in SET_LISTS:
        out = list(target)
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    key = MERGE_KEYS.get(field or "")
    if not key:
        if any(isinstance(i, dict) and "$patch" in i for i in patch):
            return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return copy.deepcopy(patch)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    out = target
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: map[] does not contain declared merge key: {key}")
        idx = next((n for n, t in enumerate(out) if isinstance(t, dict)
                    and t.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


# --- RFC 6902 -----------------------------------------------------------------------------

def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parse_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request('the server rejected our request due to an error in our request')
    return [_unescape(t) for t in path[1:].split("/")]


def _resolve(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise KeyError(t)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[int(t)]
        else:
            raise KeyError(t)
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 add/remove/replace/test/copy/move."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request("Unexpected kind: <nil>")
        kind = op["op"]
        try:
            tokens = _parse_pointer(op.get("path", ""))
            if kind == "test":
                if _resolve(doc, tokens) != op.get("value"):
                    raise StatusError({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                       "status": "Failure",
                                       "message": "the server rejected our request due to an "
                                                  "error in our request",
                                       "reason": "Invalid", "code": 422})
                continue
            if kind in ("copy", "move"):
                from_tokens = _parse_pointer(op["from"])
                value = copy.deepcopy(_resolve(doc, from_tokens))
                if kind == "move":
                    doc = _remove(doc, from_tokens)
                doc = _add(doc, tokens, value)
            elif kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc = _remove(doc, tokens)
            elif kind == "replace":
                _resolve(doc, tokens)
                doc = _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
            else:
                raise bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError):
            path = op.get("path", "")
            raise StatusError({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure",
                               "message": "the server rejected our request due to an error in "
                                          "our request",
                               "reason": "Invalid",
                               "details": {"causes": [{"message": f"{kind} operation does not "
                                                                  f"apply: doc is missing path: "
                                                                  f"\"{path}\""}]},
                               "code": 422}) from None
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            idx = int(last)
            if idx > len(parent) or idx < 0:
                raise IndexError(idx)
            parent.insert(idx, value)
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return None
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        del parent[last]
    elif isinstance(parent, list):
        parent.pop(int(last))
    else:
        raise KeyError(last)
    return doc


PATCH_TYPES = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge,
}


def apply_patch(content_type: str, doc: dict[str, Any], body: Any) -> dict[str, Any]:
    fn = PATCH_TYPES[content_type]
    if content_type != "application/json-patch+json" and not isinstance(body, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    result = fn(doc, body)
    if not isinstance(result, dict):
        raise bad_request("the patch turned the object into a non-object")
    return result
