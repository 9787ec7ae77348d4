"""Object metadata validation: label keys and values, annotation keys and their total size.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Follows k8s.io/apimachinery: pkg/apis/meta/v1/validation/validation.go (ValidateLabels,
ValidateLabelName: one ``Invalid`` per problem at the *map's* path, not the key's),
pkg/api/validation/objectmeta.go (ValidateAnnotations: keys are qualified names once
lower-cased, at most 256 KiB of keys and values together) and pkg/util/validation/validation.go
(IsQualifiedName, IsValidLabelValue and their messages, which the 422 bodies repeat word for
word).
"""

from __future__ import annotations

import re
from typing import Any

from . import errors
from .errors import FieldError

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE = re.compile(f"^({_QNAME_FMT})?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE_MAX = 63
QNAME_MAX = 63
SUBDOMAIN_MAX = 253
ANNOTATIONS_MAX_BYTES = 256 * (1 << 10)

_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
              "with an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # validation.RegexError: the examples joined with ",  or " (two spaces, as in Go).
    shown = ",  or ".join(f"'{e}'" for e in examples)
    return f"{msg} (e.g. {shown}, regex used for validation is '{fmt}')"


def qualified_name_problems(value: str) -> list[str]:
    """validation.IsQualifiedName."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        if len(prefix) > SUBDOMAIN_MAX:
            return [f"prefix part must be no more than {SUBDOMAIN_MAX} characters"]
        if not _DNS1123_SUBDOMAIN.match(prefix):
            return ["prefix part " + _regex_error(
                _SUBDOMAIN_MSG, "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                "example.com")]
    else:
        return ["a qualified name " + _regex_error(_QNAME_MSG, _QNAME_FMT,
                                                   "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    problems = []
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > QNAME_MAX:
        problems.append(f"name part must be no more than {QNAME_MAX} characters")
    if name and not _QNAME.match(name):
        problems.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT,
                                                    "MyName", "my.name", "123-abc"))
    return problems


def label_value_problems(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    problems = []
    if len(value) > LABEL_VALUE_MAX:
        problems.append(f"must be no more than {LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE.match(value):
        problems.append(_regex_error(_LABEL_VALUE_MSG, f"({_QNAME_FMT})?",
                                     "MyValue", "my_value", "12345"))
    return problems


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs += [errors.invalid(path, key, m) for m in qualified_name_problems(str(key))]
        errs += [errors.invalid(path, value, m) for m in label_value_problems(str(value))]
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    size = 0
    for key, value in (annotations or {}).items():
        errs += [errors.invalid(path, key, m) for m in qualified_name_problems(str(key).lower())]
        size += len(str(key)) + len(str(value))
    if size > ANNOTATIONS_MAX_BYTES:
        errs.append(errors.too_long(path, ANNOTATIONS_MAX_BYTES))
    return errs


def validate_object_meta(meta: dict[str, Any], path: str = "metadata") -> list[FieldError]:
    """The label and annotation part of ValidateObjectMeta (names are checked per kind)."""
    return (validate_labels(meta.get("labels"), f"{path}.labels")
            + validate_annotations(meta.get("annotations"), f"{path}.annotations"))
