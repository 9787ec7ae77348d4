"""Defaulting and validation of Jobs and Pods (the minimum that makes objects realistic).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import copy
import re
import zlib
from typing import Any

from . import errors, podfailure
from .errors import FieldError
from .metadata import validate_object_meta

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        if c.get("image"):
            c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
        c.setdefault("resources", {})
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("fieldRef")
            if ref is not None:
                ref.setdefault("apiVersion", "v1")
    return spec


def validate_pod_spec(spec: dict[str, Any], path: str, *, job: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        errs.append(errors.required(f"{path}.containers"))
    seen: set[str] = set()
    for i, c in enumerate(containers or []):
        cpath = f"{path}.containers[{i}]"
        name = c.get("name") if isinstance(c, dict) else None
        if not name:
            errs.append(errors.required(f"{cpath}.name"))
        elif not DNS1123_LABEL.match(name) or len(name) > 63:
            errs.append(errors.invalid(f"{cpath}.name", name, LABEL_MSG))
        elif name in seen:
            errs.append(errors.duplicate(f"{cpath}.name", name))
        else:
            seen.add(name)
        if not (isinstance(c, dict) and c.get("image")):
            errs.append(errors.required(f"{cpath}.image"))
    policy = spec.get("restartPolicy")
    allowed = ["OnFailure", "Never"] if job else ["Always", "OnFailure", "Never"]
    if policy not in allowed:
        errs.append(errors.not_supported(f"{path}.restartPolicy", policy, allowed))
    return errs


def pod_qos(spec: dict[str, Any]) -> str:
    any_set, guaranteed = False, True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_job(job: dict[str, Any], uid: str) -> dict[str, Any]:
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    podfailure.default(job)
    if not spec.get("podFailurePolicy"):
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    name = job["metadata"]["name"]
    tmpl = spec.setdefault("template", {})
    labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
    labels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
    default_pod_spec(tmpl.setdefault("spec", {}))
    job["status"] = {}
    return job


def validate_job(job: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    name = job["metadata"].get("name", "")
    if name and not DNS1123_SUBDOMAIN.match(name):
        errs.append(errors.invalid("metadata.name", name, SUBDOMAIN_MSG))
    elif len(name) > 63:
        errs.append(errors.invalid("spec.template.labels", name,
                                   "must be no more than 63 characters"))
    errs += validate_object_meta(job["metadata"])
    spec = job.get("spec") or {}
    if not spec.get("template") or not isinstance(spec["template"].get("spec"), dict):
        errs.append(errors.required("spec.template"))
        return errs
    errs += validate_object_meta(spec["template"].get("metadata") or {}, "spec.template.metadata")
    for f in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        v = spec.get(f)
        if v is not None and (not isinstance(v, int) or v < 0):
            errs.append(errors.invalid(f"spec.{f}", v,
                                       "must be greater than or equal to 0"))
    if spec.get("activeDeadlineSeconds") == 0:
        errs.append(errors.invalid("spec.activeDeadlineSeconds", 0, "must be greater than 0"))
    mode = spec.get("completionMode")
    if mode not in ("NonIndexed", "Indexed"):
        errs.append(errors.not_supported("spec.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        errs.append(errors.required("spec.completions",
                                    "when completion mode is Indexed"))
    errs += validate_pod_spec(spec["template"]["spec"], "spec.template.spec", job=True)
    errs += podfailure.validate(job)
    return errs


def job_update_errors(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Immutable fields, with Kueue's 'suspended and never started' template exception."""
    errs: list[FieldError] = []
    o, n = old.get("spec") or {}, new.get("spec") or {}
    for f in ("selector", "completions", "completionMode"):
        if o.get(f) != n.get(f):
            errs.append(errors.invalid(f"spec.{f}", n.get(f), "field is immutable"))
    if o.get("template") != n.get("template"):
        mutable_ok = o.get("suspend") and not (old.get("status") or {}).get("startTime")
        if mutable_ok:
            ot, nt = copy.deepcopy(o["template"]), copy.deepcopy(n.get("template") or {})
            for t in (ot, nt):
                t.setdefault("metadata", {}).pop("labels", None)
                t["metadata"].pop("annotations", None)
                for f in ("nodeSelector", "tolerations", "schedulingGates"):
                    t.setdefault("spec", {}).pop(f, None)
            if ot != nt:
                errs.append(errors.invalid("spec.template", n.get("template"),
                                           "field is immutable"))
        else:
            errs.append(errors.invalid("spec.template", n.get("template"), "field is immutable"))
    return errs


# --- Services (headless ones, as a job runner creates them) ----------------------------------
# Narrow: ClusterIP Services only (headless "None" or without an address), no allocation of
# cluster IPs, no Endpoints/EndpointSlices. Other types are refused with the real 422 message.

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def validate_service(svc: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    name = svc["metadata"].get("name", "")
    if name and not (DNS1123_LABEL.match(name) and len(name) <= 63):
        errs.append(errors.invalid("metadata.name", name, LABEL_MSG.replace(
            "a lowercase RFC 1123 label", "a DNS-1035 label")))
    errs += validate_object_meta(svc["metadata"])
    spec = svc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind not in SERVICE_TYPES:
        errs.append(errors.not_supported("spec.type", kind, SERVICE_TYPES))
    elif kind != "ClusterIP":
        errs.append(errors.forbidden("spec.type", "the fake only serves ClusterIP Services"))
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None":
        errs.append(errors.required("spec.ports"))
    for i, port in enumerate(ports):
        p = port.get("port")
        if not isinstance(p, int) or not 0 < p < 65536:
            errs.append(errors.invalid(f"spec.ports[{i}].port", p,
                                       "must be between 1 and 65535, inclusive"))
    return errs


def default_service(svc: dict[str, Any]) -> dict[str, Any]:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
    else:
        spec["clusterIP"] = spec.get("clusterIP") or (
            f"10.96.0.{zlib.crc32(svc['metadata']['name'].encode()) % 250 + 2}")
        spec["clusterIPs"] = [spec["clusterIP"]]
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    svc["status"] = {"loadBalancer": {}}
    return svc
