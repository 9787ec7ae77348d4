"""aiohttp routes of the fake Kubernetes API server (batch/v1 Jobs, core/v1 Pods and Events).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .errors import StatusError
from .exec import handle_exec
from .kueue import (
    VISIBILITY_GROUP,
    VISIBILITY_PATH,
    validate_job_update,
    validate_workload_update,
    webhook_denied,
)
from .logs import handle_log
from .metadata import validate_object_meta
from .objects import (
    default_job,
    default_pod_spec,
    default_service,
    job_update_errors,
    pod_qos,
    validate_job,
    validate_pod_spec,
    validate_service,
)
from .patch import PATCH_TYPES, apply_patch
from .selectors import matcher
from .sidecars import inject as inject_sidecar
from .store import CLOSE, RESOURCES, Watcher

if TYPE_CHECKING:
    from .fake import FakeKubernetes

RECORD = web.RequestKey("record", object)
BOOL_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
BOOL_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
BOOL_PARAMS = {"watch", "allowWatchBookmarks", "sendInitialEvents", "follow", "previous",
               "timestamps", "insecureSkipTLSVerifyBackend", "stdin", "stdout", "stderr", "tty",
               "orphanDependents", "pretty", "ignoreStoreReadErrorWithClusterBreakingPotential"}
INT_PARAMS = {"limit", "timeoutSeconds", "tailLines", "limitBytes", "sinceSeconds",
              "gracePeriodSeconds"}
HEADERS_OF_INTEREST = ("Authorization", "Content-Type", "Accept", "User-Agent",
                       "Sec-WebSocket-Protocol", "Upgrade")
WARNING_ORPHAN = ('299 - "child pods are preserved by default when jobs are deleted; set '
                  'propagationPolicy=Background to remove them or set propagationPolicy=Orphan to '
                  'suppress this warning"')

_PATHS = [
    (re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/(jobs)(?:/([^/]+)(?:/([^/]+))?)?$"), True),
    (re.compile(r"^/api/v1/namespaces/([^/]+)/(pods|events|services)(?:/([^/]+)(?:/([^/]+))?)?$"), True),
    (re.compile(r"^/apis/batch/v1/(jobs)$"), False),
    (re.compile(r"^/api/v1/(pods|events|services)$"), False),
    (re.compile(r"^/apis/kueue\.x-k8s\.io/v1beta2/namespaces/([^/]+)/(workloads)"
                r"(?:/([^/]+)(?:/([^/]+))?)?$"), True),
    (re.compile(r"^/apis/kueue\.x-k8s\.io/v1beta2/(workloads)$"), False),
    (re.compile(r"^/apis/scheduling\.volcano\.sh/v1beta1/namespaces/([^/]+)/(podgroups)"
                r"(?:/([^/]+)(?:/([^/]+))?)?$"), True),
    (re.compile(r"^/apis/scheduling\.volcano\.sh/v1beta1/(podgroups)$"), False),
]
SUBRESOURCES = {"jobs": {"status"}, "pods": {"status", "log", "exec"}, "events": set(),
                "services": set(), "workloads": {"status"}, "podgroups": {"status"},
                "nodes": set()}
# Cluster-scoped and read-only here: no kubelet registers or updates nodes through the API.
NODES_PATH = re.compile(r"^/api/v1/nodes(?:/([^/]+))?$")
# The identity RBAC names in a denial (``fake.forbid``).
USER = "system:serviceaccount:jobgraph:jobgraph"
# Custom resources: their status is a subresource (both CRDs enable it), and the API server
# refuses strategic merge patches on them (415).
CUSTOM = {"workloads", "podgroups"}
STATUS_SUBRESOURCE = {"jobs", "pods", "workloads", "podgroups"}


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]          # parsed, repeated keys kept in order
    query_items: list[tuple[str, str]]
    headers: dict[str, str]             # HEADERS_OF_INTEREST that were present
    body: Any                           # parsed JSON, raw bytes, or None
    time: float = field(default_factory=time.time)
    status: int | None = None           # HTTP status (101 for websocket upgrades)

    def param(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[-1] if values else None

    @property
    def is_kubernetes_call(self) -> bool:
        return self.path.startswith(("/api", "/apis", "/version"))

    def __repr__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query_items)
        return f"<{self.method} {self.path}{'?' + q if q else ''} -> {self.status}>"


def parse_bool(key: str, value: str) -> bool:
    if value in BOOL_TRUE:
        return True
    if value in BOOL_FALSE:
        return False
    raise errors.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def typed_query(items: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in BOOL_PARAMS:
            out[key] = parse_bool(key, value)
        elif key in INT_PARAMS:
            try:
                out[key] = int(value)
            except ValueError:
                raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') \
                    from None
        else:
            out[key] = value
    return out


def build_app(fake: FakeKubernetes) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        items = list(request.query.items())
        query: dict[str, list[str]] = {}
        for k, v in items:
            query.setdefault(k, []).append(v)
        rec = RecordedRequest(request.method, request.path, query, items,
                              {h: request.headers[h] for h in HEADERS_OF_INTEREST
                               if h in request.headers}, body)
        fake.requests.append(rec)
        request[RECORD] = rec
        try:
            resp = await handler(request)
        except StatusError as e:
            resp = e.response()
        except web.HTTPException as e:
            rec.status = e.status
            raise
        except asyncio.CancelledError:
            rec.status = None  # dropped connection (fault hook) or client went away
            raise
        rec.status = resp.status
        return resp

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        delay = fake.faults.delay_for(request)
        if delay:
            await asyncio.sleep(delay)
        fault = fake.faults.take(request)
        if fault is not None:
            if fault.drop:
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # nothing is written: the client sees a reset
            raise errors.generic(fault.status, fault.message)
        return await handler(request)

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not (
                token in fake.tokens or fake.token_issuer.authenticates(token)):
            raise errors.unauthorized()  # expired minted tokens too (tokens.py)
        return await handler(request)

    app = web.Application(middlewares=[record, faults, auth], client_max_size=2 ** 24)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        rec = request.get(RECORD)
        if rec is not None:
            rec.status = response.status  # streams (watch, follow, exec 101) record it here

    app.on_response_prepare.append(on_prepare)
    async def handle(request: web.Request) -> web.StreamResponse:
        return await dispatch(fake, request)

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


# --- discovery ------------------------------------------------------------------------------

DISCOVERY = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0-k8sfake",
                 "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
         "verbs": ["get"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "patch", "update"]},
        {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
    "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1",
                       "resources": [
        {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                   "watch"]},
        {"name": "jobs/status", "singularName": "", "namespaced": True, "kind": "Job",
         "verbs": ["get", "patch", "update"]}]},
}


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        content_type="application/json", headers=headers)


async def dispatch(fake: FakeKubernetes, request: web.Request) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    if path in DISCOVERY:
        if request.method != "GET":
            raise errors.method_not_allowed("", "", request.method.lower())
        return json_response(DISCOVERY[path])
    if (m := VISIBILITY_PATH.match(path)) is not None:
        _authorize(fake, request.method, "localqueues/pendingworkloads", VISIBILITY_GROUP,
                   m.group(2), m.group(3), {})
        if fake.kueue is None or not fake.kueue.visibility:
            raise errors.path_not_found()  # no APIService for visibility.kueue.x-k8s.io
        if request.method != "GET":
            raise errors.method_not_allowed("localqueues/pendingworkloads", VISIBILITY_GROUP,
                                            _verb(request.method))
        return json_response(fake.kueue.pending_workloads(
            m.group(1), m.group(2), m.group(3), typed_query(list(request.query.items()))))
    if (m := NODES_PATH.match(path)) is not None:
        q = typed_query(list(request.query.items()))
        _authorize(fake, request.method, "nodes", "", None, m.group(1), q)
        api = Api(fake, request, "nodes", q)
        if request.method != "GET":
            raise errors.method_not_allowed("nodes", "", _verb(request.method, m.group(1) is None))
        if m.group(1) is not None:
            return json_response(fake.store.require("nodes", "", m.group(1)))
        return await (api.watch(None) if q.get("watch") else api.list(None))
    for regex, namespaced_path in _PATHS:
        m = regex.match(path)
        if m:
            namespaced = namespaced_path
            break
    else:
        raise errors.path_not_found()
    if namespaced:
        ns, resource, name, sub = m.groups()
    else:
        ns, resource, name, sub = None, m.group(1), None, None
    if sub is not None and sub not in SUBRESOURCES[resource]:
        raise errors.path_not_found()
    if (resource == "workloads" and fake.kueue is None) or (
            resource == "podgroups" and fake.volcano is None):
        raise errors.path_not_found()  # that CRD is not installed
    items = list(request.query.items())
    q = typed_query(items)
    info = RESOURCES[resource]
    method = request.method
    _authorize(fake, method, f"{resource}/{sub}" if sub else resource, info.group, ns, name, q)
    if sub == "log":  # GET only; options checked in logs.handle_log
        if method != "GET":
            raise errors.method_not_allowed("pods/log", "", _verb(method))
        return await handle_log(fake, request, ns, name, q)
    if sub == "exec":
        if method not in ("GET", "POST"):
            raise errors.method_not_allowed("pods/exec", "", _verb(method))
        return await handle_exec(fake, request, ns, name, q, items)
    api = Api(fake, request, resource, q)
    if name is None:
        if method == "GET":
            return await (api.watch(ns) if q.get("watch") else api.list(ns))
        if method == "POST" and ns is not None:
            return await api.create(ns)
        if method == "DELETE" and ns is not None and resource == "jobs":
            return await api.delete_collection(ns)
        raise errors.method_not_allowed(resource, info.group, _verb(method, collection=True))
    if sub == "status":
        if method == "GET":
            return json_response(fake.store.require(resource, ns, name))
        if method in ("PUT", "PATCH"):
            return await api.update(ns, name, status_only=True)
        raise errors.method_not_allowed(f"{resource}/status", info.group, _verb(method))
    if method == "GET":
        return json_response(fake.store.require(resource, ns, name))
    if method in ("PUT", "PATCH"):
        return await api.update(ns, name, status_only=False)
    if method == "DELETE":
        return await api.delete(ns, name)
    raise errors.method_not_allowed(resource, info.group, _verb(method))


def _authorize(fake: FakeKubernetes, method: str, resource: str, group: str,
               namespace: str | None, name: str | None, q: dict[str, Any]) -> None:
    """RBAC: a (verb, resource) pair the test denied (``fake.forbid``) answers 403."""
    if not fake.forbidden:
        return
    verb = "watch" if method == "GET" and q.get("watch") else _verb(method, name is None)
    if (verb, resource) in fake.forbidden:
        raise errors.rbac_forbidden(verb, resource, group, namespace, name, USER)


def _verb(method: str, collection: bool = False) -> str:
    return {"GET": "list" if collection else "get", "POST": "create", "PUT": "update",
            "PATCH": "patch", "DELETE": "deletecollection" if collection else "delete"}.get(
        method, method.lower())


class Api:
    def __init__(self, fake: FakeKubernetes, request: web.Request, resource: str,
                 q: dict[str, Any]) -> None:
        self.fake, self.request, self.resource, self.q = fake, request, resource, q
        self.info = RESOURCES[resource]
        self.store = fake.store

    @property
    def dry_run(self) -> bool:
        values = self.request[RECORD].query.get("dryRun") or []
        for v in values:
            if v != "All":
                raise errors.bad_request(f'Invalid dryRun value: "{v}"')
        return bool(values)

    def body(self) -> Any:
        body = self.request[RECORD].body
        if isinstance(body, (bytes, bytearray)):
            raise errors.bad_request(
                "the object provided is unrecognized or couldn't be decoded as JSON")
        return body

    def _object_body(self, ns: str) -> dict[str, Any]:
        body = self.body()
        if not isinstance(body, dict):
            raise errors.bad_request("Object 'Kind' is missing in request body")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind is not None and kind != self.info.kind:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match "
                                     f"the expected API version ({self.info.api_version})"
                                     if api_version != self.info.api_version else
                                     f"Object kind {kind} is not a {self.info.kind}")
        if api_version is not None and api_version != self.info.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match "
                                     f"the expected API version ({self.info.api_version})")
        meta = body.setdefault("metadata", {}) or {}
        body["metadata"] = meta
        if meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        meta["namespace"] = ns
        return body

    # -- list / watch ------------------------------------------------------------------
    async def list(self, ns: str | None) -> web.Response:
        match = matcher(self.resource, self.q.get("labelSelector"), self.q.get("fieldSelector"))
        rv = self.q.get("resourceVersion")
        if rv not in (None, "", "0"):
            try:
                if int(rv) > self.store.counter:
                    raise StatusError(errors.status_body(
                        504, "Timeout", "Too large resource version: "
                        f"{rv}, current: {self.store.counter}",
                        {"causes": [{"reason": "ResourceVersionTooLarge",
                                     "message": "Too large resource version"}],
                         "retryAfterSeconds": 1}))
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{rv}"') from None
        items = [o for o in self.store.list(self.resource, ns) if match(o)]
        meta: dict[str, Any] = {"resourceVersion": str(self.store.counter)}
        token = self.q.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, token_rv = state["start"], int(state["rv"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                         "resourceVersion (version meta.k8s.io/v1)") from None
            if self.store.too_old(token_rv):
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list.")
            items = [o for o in items if _key(o) > tuple(start)]
            meta["resourceVersion"] = str(token_rv)
        limit = self.q.get("limit")
        if limit and limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            state = {"rv": int(meta["resourceVersion"]), "start": list(_key(items[-1]))}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta["remainingItemCount"] = rest
        for o in items:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return json_response({"kind": self.info.list_kind, "apiVersion": self.info.api_version,
                              "metadata": meta, "items": items})

    async def watch(self, ns: str | None) -> web.StreamResponse:
        match = matcher(self.resource, self.q.get("labelSelector"), self.q.get("fieldSelector"))
        rv_param = self.q.get("resourceVersion")
        bookmarks = bool(self.q.get("allowWatchBookmarks"))
        initial_events = self.q.get("sendInitialEvents")
        timeout = self.q.get("timeoutSeconds")
        watcher = Watcher(self.resource, ns, match, bookmarks)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        initial: list[tuple[str, Any]] = []
        error: dict[str, Any] | None = None
        if rv_param in (None, "", "0") or initial_events:
            initial = [("ADDED", o) for o in self.store.list(self.resource, ns) if match(o)]
            if initial_events:
                initial.append(("BOOKMARK", "initial-events-end"))
        else:
            try:
                rv = int(rv_param)
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{rv_param}"') from None
            if self.store.too_old(rv):
                error = errors.status_body(
                    410, "Expired", f"too old resource version: {rv} ({self.store.oldest_rv - 1})")
            else:
                for ev in self.store.replay_since(rv):
                    out = watcher.translate(ev)
                    if out is not None:
                        initial.append(out)
        if error is None:
            self.store.add_watcher(watcher)  # no await since the replay snapshot: no gap
        await resp.prepare(self.request)
        try:
            if error is not None:
                await resp.write(_line({"type": "ERROR", "object": error}))
                await resp.write_eof()
                return resp
            deadline = asyncio.get_running_loop().time() + timeout if timeout else None
            for item in initial:
                await resp.write(self._event_line(*item))
            while True:
                wait = 1.0
                if deadline is not None:
                    wait = min(wait, deadline - asyncio.get_running_loop().time())
                    if wait <= 0:
                        break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if self.request.transport is None or self.request.transport.is_closing():
                        return resp
                    continue
                if item is CLOSE:
                    break
                await resp.write(self._event_line(*item))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.drop_watcher(watcher)
        return resp

    def _event_line(self, type_: str, obj: Any) -> bytes:
        if type_ == "BOOKMARK":
            meta: dict[str, Any] = {"resourceVersion": str(self.store.counter)}
            if obj == "initial-events-end":
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            obj = {"kind": self.info.kind, "apiVersion": self.info.api_version, "metadata": meta}
        return _line({"type": type_, "object": obj})

    # -- create ------------------------------------------------------------------------
    async def create(self, ns: str) -> web.Response:
        body = self._object_body(ns)
        meta = body["metadata"]
        for f in ("uid", "resourceVersion", "creationTimestamp", "generation",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(f, None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = self.store.generate_name(meta["generateName"])
            else:
                raise errors.invalid_error(self.info.kind, self.info.group, "", [errors.required(
                    "metadata.name", "name or generateName is required")])
        meta["uid"] = str(uuid.uuid4())
        obj = self._prepare_create(body)
        if self.dry_run:
            obj["kind"], obj["apiVersion"] = self.info.kind, self.info.api_version
            obj["metadata"]["creationTimestamp"] = self.fake.clock.rfc3339()
            if self.resource != "events":
                obj["metadata"]["generation"] = 1
            return json_response(obj, 201)
        obj = self.store.create(self.resource, obj)
        return json_response(obj, 201)

    def _prepare_create(self, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if self.resource == "jobs":
            obj.pop("status", None)
            self.fake.mutate_job(obj)
            default_job(obj, obj["metadata"]["uid"])
            errs = validate_job(obj)
            if errs:
                raise errors.invalid_error("Job", "batch", name, errs)
        elif self.resource == "pods":
            inject_sidecar(obj)  # the injector's mutating webhook runs before validation
            spec = default_pod_spec(obj.setdefault("spec", {}))
            errs = validate_object_meta(obj["metadata"]) + validate_pod_spec(spec, "spec", job=False)
            if errs:
                raise errors.invalid_error("Pod", "", name, errs)
            obj["status"] = {"phase": "Pending", "qosClass": pod_qos(spec)}
        elif self.resource == "events" and not obj.get("involvedObject"):
            obj["involvedObject"] = {}
        elif self.resource in CUSTOM:
            obj.pop("status", None)  # the status subresource: ignored on create
            if self.resource == "workloads":
                obj.setdefault("spec", {}).setdefault("active", True)  # CRD default
        elif self.resource == "services":
            obj.pop("status", None)
            errs = validate_service(obj)
            if errs:
                raise errors.invalid_error("Service", "", name, errs)
            default_service(obj)
        return obj

    # -- update / patch ------------------------------------------------------------------
    async def update(self, ns: str, name: str, *, status_only: bool) -> web.Response:
        current = self.store.require(self.resource, ns, name)
        if self.request.method == "PATCH":
            ctype = (self.request.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in PATCH_TYPES:
                raise errors.unsupported_media_type(ctype)
            if self.resource in CUSTOM and ctype == "application/strategic-merge-patch+json":
                # apiserver's CRD handler: strategic merge needs Go struct tags
                raise errors.unsupported_media_type(ctype, custom=True)
            patch_body = self.body()
            if patch_body is None:
                raise errors.bad_request("the body of the request was empty")
            new = apply_patch(ctype, current, patch_body)
            new_meta = new.get("metadata") or {}
            if new_meta.get("resourceVersion") not in (None, "",
                                                       current["metadata"]["resourceVersion"]):
                raise errors.conflict(self.resource, self.info.group, name)
        else:
            new = self._object_body(ns)
            rv = new["metadata"].get("resourceVersion")
            if new["metadata"].get("name") != name:
                raise errors.bad_request(f"the name of the object ({new['metadata'].get('name')}) "
                                         f"does not match the name on the URL ({name})")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(self.resource, self.info.group, name)
        new_meta = new.setdefault("metadata", {})
        if new_meta.get("name", name) != name or new_meta.get("namespace", ns) != ns:
            raise errors.bad_request("metadata.name and metadata.namespace are immutable")
        new_meta["name"], new_meta["namespace"] = name, ns
        if self.resource in STATUS_SUBRESOURCE:
            if status_only:
                status = new.get("status")
                new = copy.deepcopy(current)
                if status is not None:
                    new["status"] = status
            else:
                new["status"] = current.get("status")
                if self.resource == "jobs":
                    tmpl = (new.get("spec") or {}).get("template") or {}
                    default_pod_spec(tmpl.setdefault("spec", {}))
                    errs = validate_job(new) + job_update_errors(current, new)
                    if errs:
                        raise errors.invalid_error("Job", "batch", name, errs)
                    # Kueue's validating webhook runs after the Job strategy's validation.
                    if self.fake.kueue is not None and (
                            denied := validate_job_update(current, new)):
                        raise webhook_denied(denied)
                elif self.resource == "workloads":
                    errs = validate_workload_update(current, new)
                    if errs:
                        raise errors.invalid_error("Workload", "kueue.x-k8s.io", name, errs)
                elif self.resource == "podgroups":
                    pass
                else:
                    default_pod_spec(new.setdefault("spec", {}))
                    if errs := validate_object_meta(new_meta):
                        raise errors.invalid_error("Pod", "", name, errs)
                    if new["spec"] != current["spec"]:
                        new["spec"] = _pod_spec_update(current, new, name)
        if self.dry_run:
            return json_response(new)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        obj = self.store.replace(self.resource, new)
        return json_response(obj)

    # -- delete --------------------------------------------------------------------------
    def _delete_options(self) -> dict[str, Any]:
        body = self.body()
        opts: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in self.q:
                opts[key] = self.q[key]
        if "orphanDependents" in opts and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
        policy = opts.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise errors.invalid_error("DeleteOptions", "", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])])
        return opts

    async def delete(self, ns: str, name: str) -> web.Response:
        current = self.store.require(self.resource, ns, name)
        opts = self._delete_options()
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(self.resource, self.info.group, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID "
                                  f"in object meta: {current['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != \
                current["metadata"]["resourceVersion"]:
            raise errors.conflict(self.resource, self.info.group, name,
                                  f"Precondition failed: ResourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                  f"{current['metadata']['resourceVersion']}")
        dry = self.dry_run
        if self.resource == "pods":
            grace = opts.get("gracePeriodSeconds")
            if grace is None:
                grace = current["spec"].get("terminationGracePeriodSeconds", 30)
            if not current["spec"].get("nodeName"):
                grace = 0
            if dry:
                return json_response(current)
            return json_response(self.store.mark_deleted("pods", ns, name, grace=int(grace)))
        if self.resource == "events":
            if not dry:
                self.store.remove("events", ns, name)
            return json_response(self._success(current))
        if self.resource in CUSTOM:  # the CRD store: a Status, or the object it keeps
            if dry:
                return json_response(self._success(current))
            if current["metadata"].get("finalizers"):
                return json_response(self.store.mark_deleted(self.resource, ns, name))
            self.store.remove(self.resource, ns, name)
            return json_response(self._success(current))
        if self.resource == "services":  # ReturnDeletedObject, like pods
            if dry:
                return json_response(current)
            return json_response(self.store.remove("services", ns, name))
        # jobs
        policy = opts.get("propagationPolicy")
        headers = None
        if policy is None:
            policy = "Orphan"
            headers = {"Warning": WARNING_ORPHAN}
        if dry:
            return json_response(current if policy != "Background" else self._success(current),
                                 headers=headers)
        if policy == "Background":
            if current["metadata"].get("finalizers"):
                obj = self.store.mark_deleted("jobs", ns, name)
                return json_response(obj, headers=headers)
            self.store.remove("jobs", ns, name)
            return json_response(self._success(current), headers=headers)
        finalizer = "orphan" if policy == "Orphan" else "foregroundDeletion"
        obj = self.store.mark_deleted("jobs", ns, name, add_finalizer=finalizer)
        return json_response(obj, headers=headers)

    async def delete_collection(self, ns: str) -> web.Response:
        match = matcher(self.resource, self.q.get("labelSelector"), self.q.get("fieldSelector"))
        opts = self._delete_options()
        policy = opts.get("propagationPolicy") or "Orphan"
        items = [o for o in self.store.list(self.resource, ns) if match(o)]
        out = []
        if not self.dry_run:
            for o in items:
                m = o["metadata"]
                if policy == "Background" and not m.get("finalizers"):
                    out.append(self.store.remove(self.resource, ns, m["name"]))
                else:
                    out.append(self.store.mark_deleted(
                        self.resource, ns, m["name"],
                        add_finalizer="orphan" if policy == "Orphan" else
                        "foregroundDeletion" if policy == "Foreground" else None))
        for o in out or items:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return json_response({"kind": self.info.list_kind, "apiVersion": self.info.api_version,
                              "metadata": {"resourceVersion": str(self.store.counter)},
                              "items": out or items})

    def _success(self, obj: dict[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {"name": obj["metadata"]["name"]}
        if self.info.group:
            details["group"] = self.info.group
        details["kind"] = self.resource
        details["uid"] = obj["metadata"]["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}


def _pod_spec_update(current: dict[str, Any], new: dict[str, Any], name: str) -> dict[str, Any]:
    """Pod spec updates may only change container images (and a few fields we don't model)."""
    old_spec, new_spec = current["spec"], new["spec"]
    a = copy.deepcopy(new_spec)
    b = copy.deepcopy(old_spec)
    for s in (a, b):
        for c in s.get("containers") or []:
            c.pop("image", None)
        s.pop("activeDeadlineSeconds", None)
        s.pop("tolerations", None)
    if a != b:
        raise errors.invalid_error("Pod", "", name, [errors.forbidden(
            "spec", "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                    "`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)")])
    return new_spec


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"
