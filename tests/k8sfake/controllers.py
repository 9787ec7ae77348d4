"""Simulated Job controller, garbage collector, Kueue, scheduler and kubelet (KWOK-like stages).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

All of them are in-process asyncio tasks that read and write the same ``Store`` as the API, so
every change they make has its own resourceVersion, watch event and history entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import podfailure
from .events import NODE
from .logs import ContainerLog
from .nodes import place
from .objects import COMPLETION_INDEX, CONTROLLER_UID, JOB_NAME, TRACKING_FINALIZER, pod_qos
from .sidecars import inject as inject_sidecar
from .sidecars import is_sidecar
from .store import WatchEvent, parse_time

if TYPE_CHECKING:
    from .fake import FakeKubernetes

SCENARIO = "fake.k8s/scenario"
LOGS = "fake.k8s/logs"
RUN_SECONDS = "fake.k8s/run-seconds"
EXIT_CODE = "fake.k8s/exit-code"
HOST_IP = "127.0.0.1"


@dataclass
class Delays:
    """Stage delays in seconds on the fake's (virtual) clock. All 0 = as fast as possible."""

    schedule: float = 0.0          # pod created -> bound to the node
    pull: float = 0.0              # Pulling -> Pulled
    start: float = 0.0             # Created -> Started
    image_pull_backoff: float = 0.0  # ErrImagePull -> ImagePullBackOff
    crash_backoff: float = 0.0     # OnFailure restart back-off
    run_seconds: float = 0.0       # default duration of a scripted (non-process) container
    max_grace: float = 2.0         # real seconds to wait after SIGTERM before SIGKILL
    bookmark_interval: float | None = None  # periodic watch bookmarks (None = only on demand)


def now(fake: FakeKubernetes) -> str:
    return fake.clock.rfc3339()


def owner_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref.get("uid")
    return None


def condition(type_: str, status: str, reason: str, message: str, ts: str) -> dict[str, Any]:
    return {"type": type_, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def set_condition(conds: list[dict[str, Any]], new: dict[str, Any]) -> bool:
    for i, c in enumerate(conds):
        if c["type"] == new["type"]:
            if c["status"] == new["status"] and c.get("reason") == new.get("reason"):
                return False
            conds[i] = new
            return True
    conds.append(new)
    return True


def has_condition(obj: dict[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _indexes_str(indexes: set[int]) -> str:
    out, items = [], sorted(indexes)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


# =============================================================================================
# Job controller + garbage collector + Kueue
# =============================================================================================

class JobController:
    def __init__(self, fake: FakeKubernetes) -> None:
        self.fake = fake
        self.store = fake.store
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.pending: set[tuple[str, str]] = set()
        self.busy = False
        self.counted: dict[str, dict[str, tuple[str, int | None]]] = {}
        self.seen: dict[str, dict[str, int | None]] = {}
        self.ignored: set[str] = set()
        self.fail_job: dict[str, str] = {}  # job uid -> message of the FailJob rule that matched
        self.timers: dict[str, asyncio.Task[None]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.store.listeners.append(self.on_event)
        self.task = asyncio.create_task(self.run(), name="k8sfake-job-controller")

    async def stop(self) -> None:
        for t in [self.task, *self.timers.values()]:
            if t:
                t.cancel()
        await asyncio.gather(*[t for t in [self.task, *self.timers.values()] if t],
                             return_exceptions=True)

    def enqueue(self, ns: str, name: str) -> None:
        key = (ns, name)
        if key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    def on_event(self, ev: WatchEvent) -> None:
        meta = ev.new["metadata"]
        if ev.resource == "jobs":
            if ev.type == "DELETED":
                self.garbage_collect(ev.new)
            else:
                self.enqueue(meta["namespace"], meta["name"])
        elif ev.resource == "pods":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Job":
                    self.enqueue(meta["namespace"], ref["name"])
            if ev.old:
                for ref in ev.old["metadata"].get("ownerReferences") or []:
                    if ref.get("kind") == "Job":
                        self.enqueue(meta["namespace"], ref["name"])

    @property
    def idle(self) -> bool:
        return not self.pending and not self.busy

    async def run(self) -> None:
        while True:
            key = await self.queue.get()
            self.busy = True
            self.pending.discard(key)
            try:
                self.reconcile(*key)
            except Exception:  # pragma: no cover - a bug in the fake must be visible
                import traceback
                traceback.print_exc()
                self.fake.controller_errors.append(traceback.format_exc())
            finally:
                self.busy = False
            await asyncio.sleep(0)

    # -- GC ------------------------------------------------------------------------------
    def owned_pods(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [p for p in self.store.list("pods", job["metadata"]["namespace"])
                if owner_uid(p) == uid]

    def garbage_collect(self, job: dict[str, Any]) -> None:
        """Background propagation: the job is gone; delete its dependents."""
        for pod in self.owned_pods(job):
            self._drop_finalizer(pod)
            self.delete_pod(pod)
        uid = job["metadata"]["uid"]
        for svc in self.store.list("services", job["metadata"]["namespace"]):
            if owner_uid(svc) == uid:
                self.store.remove("services", svc["metadata"]["namespace"],
                                  svc["metadata"]["name"])
        self.counted.pop(job["metadata"]["uid"], None)
        self.seen.pop(job["metadata"]["uid"], None)
        self.fail_job.pop(job["metadata"]["uid"], None)

    def _drop_finalizer(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        pod = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        if pod is None:
            return None
        fins = pod["metadata"].get("finalizers") or []
        if TRACKING_FINALIZER in fins:
            pod["metadata"]["finalizers"] = [f for f in fins if f != TRACKING_FINALIZER]
            return self.store.replace("pods", pod)
        return pod

    def delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        current = self.store.get("pods", meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        grace = current["spec"].get("terminationGracePeriodSeconds", 30)
        if not current["spec"].get("nodeName"):
            grace = 0
        self.store.mark_deleted("pods", meta["namespace"], meta["name"], grace=grace)

    def _finish_deletion(self, job: dict[str, Any]) -> None:
        fins = job["metadata"].get("finalizers") or []
        pods = self.owned_pods(job)
        if "orphan" in fins:
            for pod in pods:
                pod = self._drop_finalizer(pod) or pod
                pod["metadata"]["ownerReferences"] = [
                    r for r in pod["metadata"].get("ownerReferences") or []
                    if r.get("uid") != job["metadata"]["uid"]]
                if self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"]):
                    self.store.replace("pods", pod)
            job = self.store.get("jobs", job["metadata"]["namespace"], job["metadata"]["name"])
            if job:
                job["metadata"]["finalizers"] = [f for f in fins if f != "orphan"]
                self.store.replace("jobs", job)
        elif "foregroundDeletion" in fins:
            for pod in pods:
                if TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []) and (
                        pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    self._drop_finalizer(pod)
                self.delete_pod(pod)
            if not self.owned_pods(job):
                job = self.store.get("jobs", job["metadata"]["namespace"],
                                     job["metadata"]["name"])
                if job:
                    job["metadata"]["finalizers"] = [f for f in fins if f != "foregroundDeletion"]
                    self.store.replace("jobs", job)
        else:
            for pod in pods:
                self._drop_finalizer(pod)

    # -- the job controller --------------------------------------------------------------
    def reconcile(self, ns: str, name: str) -> None:
        job = self.store.get("jobs", ns, name)
        if job is None:
            return
        if job["metadata"].get("deletionTimestamp"):
            self._finish_deletion(job)
            return
        fake, spec = self.fake, job["spec"]
        uid = job["metadata"]["uid"]
        ts = now(fake)
        pods = self.owned_pods(job)
        counted = self.counted.setdefault(uid, {})
        seen = self.seen.setdefault(uid, {})
        indexed = spec.get("completionMode") == "Indexed"
        events: list[tuple[str, str, str]] = []

        def index_of(pod: dict[str, Any]) -> int | None:
            v = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
            return int(v) if v is not None and v.isdigit() else None

        present = set()
        for p in pods:
            puid = p["metadata"]["uid"]
            present.add(puid)
            seen[puid] = index_of(p)
            phase = (p.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and puid not in counted:
                outcome = "ignored" if puid in self.ignored else phase
                if outcome == "Failed":
                    fail_job, count, _ = podfailure.match(spec.get("podFailurePolicy"), p)
                    outcome = outcome if count else "ignored"
                    if fail_job:
                        self.fail_job.setdefault(uid, fail_job)
                counted[puid] = (outcome, index_of(p))
            if phase in ("Succeeded", "Failed"):
                self._drop_finalizer(p)
        for puid, idx in list(seen.items()):
            if puid not in present:
                if puid not in counted:  # vanished while not terminal: a failure
                    counted[puid] = ("ignored" if puid in self.ignored else "Failed", idx)
                del seen[puid]

        def terminal(p: dict[str, Any]) -> bool:
            return (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")

        active = [p for p in pods if not terminal(p) and not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in pods if not terminal(p) and p["metadata"].get("deletionTimestamp")]
        succeeded_idx = {i for st, i in counted.values() if st == "Succeeded" and i is not None}
        succeeded = sum(1 for st, _ in counted.values() if st == "Succeeded")
        failed = sum(1 for st, _ in counted.values() if st == "Failed")
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            failed += sum(cs.get("restartCount", 0) for p in active
                          for cs in (p.get("status") or {}).get("containerStatuses") or [])

        status = copy.deepcopy(job.get("status") or {})
        conds = status.setdefault("conditions", [])
        finished = has_condition(job, "Complete") or has_condition(job, "Failed")

        def delete_active(ignore: bool = False) -> None:
            for p in active:
                if ignore:
                    self.ignored.add(p["metadata"]["uid"])
                self.delete_pod(p)
                events.append(("Normal", "SuccessfulDelete",
                               f"Deleted pod: {p['metadata']['name']}"))
            active.clear()

        target = next((c for c in conds if c["type"] in ("FailureTarget", "SuccessCriteriaMet")
                       and c["status"] == "True"), None)
        if finished:
            delete_active()
        elif target is not None:
            # Current controllers first record the outcome (FailureTarget/SuccessCriteriaMet)
            # and add Failed/Complete in a later status update, once no pod of the Job is
            # left terminating (pkg/controller/job/job_controller.go: newFailureCondition /
            # newSuccessCondition under delayTerminalCondition(), enactJobFinished "Delaying
            # marking the Job as finished, because there are still terminating pod(s)").
            busy = bool(active or terminating)
            delete_active()
            if not busy:
                self._enact_finished(status, conds, target, ts, events)
        elif spec.get("suspend"):
            if set_condition(conds, condition("Suspended", "True", "JobSuspended",
                                              "Job suspended", ts)):
                events.append(("Normal", "Suspended", "Job suspended"))
            delete_active(ignore=True)
        else:
            resumed = any(c["type"] == "Suspended" and c["status"] == "True" for c in conds)
            if resumed:
                set_condition(conds, condition("Suspended", "False", "JobResumed",
                                               "Job resumed", ts))
                events.append(("Normal", "Resumed", "Job resumed"))
                status["startTime"] = ts
            status.setdefault("startTime", ts)
            completions = spec.get("completions")
            ads = spec.get("activeDeadlineSeconds")
            start = parse_time(status["startTime"]) or fake.clock.time()
            fail: tuple[str, str] | None = None
            if uid in self.fail_job:  # a pod matched a FailJob rule of the podFailurePolicy
                fail = ("PodFailurePolicy", self.fail_job[uid])
            elif failed > spec.get("backoffLimit", 6):
                fail = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif ads is not None and fake.clock.time() - start >= ads:
                fail = ("DeadlineExceeded", "Job was active longer than specified deadline")
            done = (len(succeeded_idx) >= completions if indexed and completions is not None
                    else completions is not None and succeeded >= completions)
            if completions is None and succeeded > 0 and not active:
                done = True
            if fail:
                set_condition(conds, condition("FailureTarget", "True", fail[0], fail[1], ts))
                delete_active()
                self.enqueue(ns, name)  # Failed follows in its own update
            elif done:
                delete_active()
                set_condition(conds, condition("SuccessCriteriaMet", "True", "CompletionsReached",
                                               "Reached expected number of succeeded pods", ts))
                self.enqueue(ns, name)  # Complete follows in its own update
            else:
                parallelism = spec.get("parallelism", 1)
                if indexed:
                    busy = {index_of(p) for p in active + terminating}
                    todo = [i for i in range(completions) if i not in succeeded_idx
                            and i not in busy]
                    for i in todo[: max(0, parallelism - len(active))]:
                        active.append(self.create_pod(job, i, events))
                else:
                    want = parallelism if completions is None else min(
                        parallelism, completions - succeeded)
                    # podReplacementPolicy Failed (the default with a podFailurePolicy): a pod
                    # is replaced once it has failed, not while it terminates (job_controller.go
                    # onlyReplaceFailedPods; manageJob takes the terminating pods off).
                    if spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy"):
                        want -= len(terminating)
                    for _ in range(max(0, want - len(active))):
                        active.append(self.create_pod(job, None, events))
                if ads is not None:
                    self._deadline_timer(job, start + ads - fake.clock.time())

        # status
        for key, value in (("active", len(active)), ("succeeded", succeeded),
                           ("failed", failed)):
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["ready"] = sum(1 for p in active if has_condition(p, "Ready"))
        status["terminating"] = len(terminating)
        if indexed and succeeded_idx:
            status["completedIndexes"] = _indexes_str(succeeded_idx)
        status["uncountedTerminatedPods"] = {}
        if not conds:
            status.pop("conditions")
        job = self.store.get("jobs", ns, name)
        if job is not None and job.get("status") != status:
            job["status"] = status
            job = self.store.replace("jobs", job)
        if job is not None:
            for type_, reason, message in events:
                fake.recorder.legacy(job, type_, reason, message, component="job-controller")

    @staticmethod
    def _enact_finished(status: dict[str, Any], conds: list[dict[str, Any]],
                        target: dict[str, Any], ts: str,
                        events: list[tuple[str, str, str]]) -> None:
        """The terminal condition after the interim one (enactJobFinished; the Failed
        condition keeps FailureTarget's reason and message, newFailedConditionForFailureTarget)."""
        reason, message = target.get("reason") or "", target.get("message") or ""
        if target["type"] == "FailureTarget":
            set_condition(conds, condition("Failed", "True", reason, message, ts))
            events.append(("Warning", reason, message))
        else:
            set_condition(conds, condition("Complete", "True", reason, message, ts))
            status["completionTime"] = ts
            events.append(("Normal", "Completed", "Job completed"))

    def _deadline_timer(self, job: dict[str, Any], seconds: float) -> None:
        uid = job["metadata"]["uid"]
        if uid in self.timers and not self.timers[uid].done():
            self.timers[uid].cancel()
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]

        async def fire() -> None:
            await self.fake.clock.sleep(max(0.0, seconds) + 0.001)
            self.enqueue(ns, name)

        self.timers[uid] = asyncio.create_task(fire())

    def create_pod(self, job: dict[str, Any], index: int | None,
                   events: list[tuple[str, str, str]]) -> dict[str, Any]:
        jm = job["metadata"]
        tmpl = copy.deepcopy(job["spec"]["template"])
        tmeta = tmpl.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        spec = tmpl["spec"]
        prefix = f"{jm['name']}-"
        if index is not None:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
            prefix = f"{jm['name']}-{index}-"
            spec.setdefault("hostname", f"{jm['name']}-{index}")
            for c in spec.get("containers") or []:
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                        "apiVersion": "v1",
                        "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}})
        labels.setdefault(CONTROLLER_UID, jm["uid"])
        labels.setdefault(JOB_NAME, jm["name"])
        meta: dict[str, Any] = {
            "name": self.store.generate_name(prefix), "generateName": prefix,
            "namespace": jm["namespace"], "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jm["name"],
                                 "uid": jm["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
            "finalizers": [TRACKING_FINALIZER],
        }
        if annotations:
            meta["annotations"] = annotations
        pod = {"metadata": meta, "spec": spec}
        inject_sidecar(pod)  # admission runs on the controller's create too
        pod["status"] = {"phase": "Pending", "qosClass": pod_qos(spec)}
        pod = self.store.create("pods", pod)
        events.append(("Normal", "SuccessfulCreate", f"Created pod: {meta['name']}"))
        return pod


# =============================================================================================
# Kubelet (+ scheduler)
# =============================================================================================

@dataclass
class Running:
    """One running container instance."""

    cid: str
    log: ContainerLog
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[int] | None = None
    killed_with: int | None = None
    env: dict[str, str] | None = None


class Kubelet:
    def __init__(self, fake: FakeKubernetes) -> None:
        self.fake = fake
        self.store = fake.store
        self.pods: dict[str, asyncio.Task[None]] = {}
        self.running: dict[tuple[str, str], Running] = {}  # (pod uid, container) -> instance
        self.settling: set[str] = set()
        self.deleting: set[str] = set()
        self.pulled: set[str] = set()
        # (pod uid, container) -> set when an injected sidecar is told to quit
        self.sidecar_quits: dict[tuple[str, str], asyncio.Event] = {}
        self.ip_seq = 0
        self.root = Path(tempfile.mkdtemp(prefix="k8sfake-kubelet-"))
        # Set (and replaced) when a node or a pod changes: unschedulable pods are tried again.
        self.cluster_changed = asyncio.Event()

    def start(self) -> None:
        self.store.listeners.append(self.on_event)

    async def stop(self) -> None:
        for run in list(self.running.values()):
            self._signal(run, signal.SIGKILL)
        tasks = list(self.pods.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in list(self.running.values()):
            if run.proc and run.proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.proc.wait(), 2)
            run.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def idle(self) -> bool:
        return not self.settling

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource in ("nodes", "pods"):
            self.cluster_changed.set()
            self.cluster_changed = asyncio.Event()
        if ev.resource != "pods":
            return
        uid = ev.new["metadata"]["uid"]
        if ev.type == "ADDED":
            self.pods[uid] = asyncio.create_task(self.run_pod(ev.new), name=f"kubelet-{uid}")
        elif ev.type == "DELETED":
            for key, run in list(self.running.items()):
                if key[0] == uid:
                    self._signal(run, signal.SIGKILL, 137)
            task = self.pods.get(uid)
            if task and uid not in self.deleting:
                task.cancel()
        elif (ev.new["metadata"].get("deletionTimestamp") and uid not in self.deleting
              and ev.new["spec"].get("nodeName")):
            self.deleting.add(uid)
            asyncio.create_task(self.kill_pod(ev.new))
        elif (ev.new["metadata"].get("deletionTimestamp") and not ev.new["spec"].get("nodeName")
              and (ev.new.get("status") or {}).get("phase") not in ("Succeeded", "Failed")):
            # No kubelet will end a pod that was never bound: the pod garbage collector does
            # (pkg/controller/podgc/gc_controller.go gcUnscheduledTerminating ->
            # markFailedAndDeletePod: phase Failed, then a delete with grace 0), so a finalizer
            # such as the Job's tracking one can be removed.
            asyncio.get_running_loop().call_soon(self._gc_unscheduled, ev.new)

    def _gc_unscheduled(self, pod: dict[str, Any]) -> None:
        def failed(p: dict[str, Any]) -> None:
            if not p["spec"].get("nodeName") and p["status"].get("phase") not in (
                    "Succeeded", "Failed"):
                p["status"]["phase"] = "Failed"
        self._update(pod, failed)

    async def _place(self, pod: dict[str, Any]) -> str | None:
        """The default scheduler with nodes (nodes.py): the node to bind to, once one fits;
        until then the pod is Unschedulable, tried again at each node or pod change."""
        uid, fake = pod["metadata"]["uid"], self.fake
        message = None
        while True:
            changed = self.cluster_changed
            cur = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            if cur is None or cur["metadata"]["uid"] != uid or cur["metadata"].get(
                    "deletionTimestamp"):
                return None
            node, why = place(cur, self.store.list("nodes"), self.store.list("pods"))
            if node is not None:
                return node
            if why != message:
                message = why

                def unschedulable(p: dict[str, Any], why: str = why) -> None:
                    # podutil.UpdatePodCondition: a new message keeps lastTransitionTime.
                    conds = p["status"].setdefault("conditions", [])
                    _set_pod_condition(conds, {
                        "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                        "lastTransitionTime": now(fake), "reason": "Unschedulable",
                        "message": why})
                    for c in conds:
                        if c["type"] == "PodScheduled":
                            c["message"] = why
                marked = self._update(cur, unschedulable)
                if marked is not None:
                    fake.recorder.new(marked, "Warning", "FailedScheduling", why,
                                      component="default-scheduler", action="Scheduling")
            self.settling.discard(uid)
            await changed.wait()
            self.settling.add(uid)

    # -- helpers -------------------------------------------------------------------------
    def _update(self, pod: dict[str, Any], fn: Any) -> dict[str, Any] | None:
        cur = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        if cur is None or cur["metadata"]["uid"] != pod["metadata"]["uid"]:
            return None
        fn(cur)
        return self.store.replace("pods", cur)

    def _event(self, pod: dict[str, Any], type_: str, reason: str, message: str,
               container: str | None = None) -> None:
        self.fake.recorder.legacy(pod, type_, reason, message, component="kubelet", host=NODE,
                                  field_path=f"spec.containers{{{container}}}" if container
                                  else None)

    def _cstatus(self, pod: dict[str, Any], name: str) -> dict[str, Any]:
        statuses = pod["status"].setdefault("containerStatuses", [])
        for st in statuses:
            if st["name"] == name:
                return st
        image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == name)
        st = {"name": name, "image": image, "imageID": "", "ready": False, "restartCount": 0,
              "started": False, "state": {"waiting": {"reason": "ContainerCreating"}},
              "lastState": {}}
        statuses.append(st)
        # The kubelet lists statuses sorted by container name, not in spec order
        # (pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses:
        # sort.Sort(kubetypes.SortedContainerStatuses(...)), Less compares Name): an injected
        # istio-proxy comes before main.
        statuses.sort(key=lambda s: s["name"])
        return st

    @staticmethod
    def _pod_conditions(pod: dict[str, Any]) -> None:
        statuses = pod["status"].get("containerStatuses") or []
        unready = [s["name"] for s in statuses if not s.get("ready")]
        conds = pod["status"].setdefault("conditions", [])
        ts = pod["status"].get("_ts") or ""
        phase = pod["status"].get("phase")
        if phase == "Succeeded":
            reason, msg = "PodCompleted", ""
        else:
            reason, msg = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
        for type_ in ("Ready", "ContainersReady"):
            if unready or phase in ("Succeeded", "Failed"):
                c = {"type": type_, "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": ts, "reason": reason}
                if msg:
                    c["message"] = msg
            else:
                c = {"type": type_, "status": "True", "lastProbeTime": None,
                     "lastTransitionTime": ts}
            _set_pod_condition(conds, c)
        ready_to_start = "False" if phase in ("Succeeded", "Failed") else "True"
        _set_pod_condition(conds, {"type": "PodReadyToStartContainers", "status": ready_to_start,
                                   "lastProbeTime": None, "lastTransitionTime": ts})
        pod["status"].pop("_ts", None)

    def _annotations(self, pod: dict[str, Any]) -> dict[str, str]:
        return pod["metadata"].get("annotations") or {}

    # -- the pod lifecycle ---------------------------------------------------------------
    async def run_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self.settling.add(uid)
        try:
            await self._run_pod(pod)
        except asyncio.CancelledError:
            pass
        finally:
            self.settling.discard(uid)

    async def _run_pod(self, pod: dict[str, Any]) -> None:
        fake, delays = self.fake, self.fake.delays
        ann = self._annotations(pod)
        scenario = ann.get(SCENARIO, "run")
        await fake.clock.sleep(delays.schedule)
        if pod["spec"].get("nodeName"):
            pass  # created already bound
        elif pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
            # Another scheduler binds it (Volcano's gang scheduler, tests/k8sfake/volcano.py);
            # with none running under that name the pod stays Pending, as in a real cluster.
            self.settling.discard(pod["metadata"]["uid"])
            if pod["spec"]["schedulerName"] != "volcano" or fake.volcano is None:
                await asyncio.Event().wait()
            else:
                await fake.volcano.wait_bound(pod)
            self.settling.add(pod["metadata"]["uid"])
        elif scenario == "pending":
            def unschedulable(p: dict[str, Any]) -> None:
                _set_pod_condition(p["status"].setdefault("conditions", []), {
                    "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": now(fake), "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. "
                               "preemption: 0/1 nodes are available: 1 No preemption victims "
                               "found for incoming pod."})
            cur = self._update(pod, unschedulable)
            if cur:
                fake.recorder.new(cur, "Warning", "FailedScheduling",
                                  "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. "
                                  "preemption: 0/1 nodes are available: 1 No preemption victims "
                                  "found for incoming pod.",
                                  component="default-scheduler", action="Scheduling")
            self.settling.discard(pod["metadata"]["uid"])
            await asyncio.Event().wait()  # stays Pending until deleted
        else:
            node_name: str | None = NODE
            if self.store.objects["nodes"]:
                node_name = await self._place(pod)
                if node_name is None:
                    return  # deleted while waiting for a node

            def bind(p: dict[str, Any]) -> None:
                p["spec"]["nodeName"] = node_name
                _set_pod_condition(p["status"].setdefault("conditions", []), {
                    "type": "PodScheduled", "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": now(fake)})
            cur = self._update(pod, bind)
            if cur is None:
                return
            ns, name = cur["metadata"]["namespace"], cur["metadata"]["name"]
            fake.recorder.new(cur, "Normal", "Scheduled",
                              f"Successfully assigned {ns}/{name} to {NODE}",
                              component="default-scheduler", action="Binding",
                              instance="default-scheduler-fake")
        # kubelet: pod-create stage
        self.ip_seq += 1
        pod_ip = f"10.244.0.{self.ip_seq % 250 + 2}"

        def create_stage(p: dict[str, Any]) -> None:
            st = p["status"]
            st.update({"phase": "Pending", "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
                       "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": now(fake)})
            for c in p["spec"]["containers"]:
                self._cstatus(p, c["name"])
            st["_ts"] = now(fake)
            self._pod_conditions(p)
            _set_pod_condition(st["conditions"], {"type": "Initialized", "status": "True",
                                                   "lastProbeTime": None,
                                                   "lastTransitionTime": now(fake)})
        cur = self._update(pod, create_stage)
        if cur is None:
            return
        pod = cur
        results = await asyncio.gather(*[self.run_container(pod, c)
                                          for c in pod["spec"]["containers"]])
        if None in results:
            return  # stuck (image pull failure) or pod gone
        # every container terminated (restartPolicy Never / OnFailure success)
        codes = [r for r in results if isinstance(r, int)]
        await self._finish_pod(pod, codes)

    async def _finish_pod(self, pod: dict[str, Any], codes: list[int]) -> None:
        phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"

        def done(p: dict[str, Any]) -> None:
            p["status"]["phase"] = phase
            p["status"]["_ts"] = now(self.fake)
            self._pod_conditions(p)
        cur = self._update(pod, done)
        if cur is not None and cur["metadata"].get("deletionTimestamp"):
            self.store.mark_deleted("pods", cur["metadata"]["namespace"],
                                    cur["metadata"]["name"], grace=0)

    async def run_container(self, pod: dict[str, Any], c: dict[str, Any]) -> int | None:
        fake, delays = self.fake, self.fake.delays
        name, image = c["name"], c["image"]
        ann = self._annotations(pod)
        scenario = ann.get(SCENARIO, "run")
        restart_policy = pod["spec"].get("restartPolicy", "Always")
        pull_fail = scenario == "image-pull-backoff" or image.startswith("fake.invalid/")
        # image pull
        policy = c.get("imagePullPolicy", "IfNotPresent")
        if pull_fail or policy == "Always" or image not in self.pulled:
            self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
            await fake.clock.sleep(delays.pull)
            if pull_fail:
                return await self._image_pull_failure(pod, c)
            self.pulled.add(image)
            self._event(pod, "Normal", "Pulled",
                        f'Successfully pulled image "{image}" in {delays.pull:.3g}s '
                        f'({delays.pull:.3g}s including waiting). Image size: 4270000 bytes.', name)
        else:
            self._event(pod, "Normal", "Pulled",
                        f'Container image "{image}" already present on machine', name)
        image_id = f"docker.io/library/{image.rsplit('/', 1)[-1].split(':')[0]}@sha256:" + \
            _stable_hex(image)
        restarts = 0
        while True:
            cur = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            if cur is None or cur["metadata"].get("deletionTimestamp"):
                return None if cur is None else 137
            try:
                env = build_env(cur, c, fake)
                argv = container_argv(c, env)
            except ConfigError as e:
                def cfg_err(p: dict[str, Any], msg: str = str(e)) -> None:
                    st = self._cstatus(p, name)
                    st["state"] = {"waiting": {"reason": "CreateContainerConfigError",
                                               "message": msg}}
                self._update(pod, cfg_err)
                self._event(pod, "Warning", "Failed", f"Error: {e}", name)
                return None
            cid = f"containerd://{secrets.token_hex(32)}"
            log = ContainerLog(fake.clock.offset, max_size=fake.container_log_max_size)
            fake.logs[cid] = log
            run = Running(cid=cid, log=log, env=env)
            self._event(pod, "Normal", "Created", f"Created container: {name}", name)
            await fake.clock.sleep(delays.start)
            started_at = now(fake)
            start_error = None
            if argv is None and is_sidecar(cur, name):
                run.task = asyncio.create_task(self._sidecar(cur, name, log))
            elif argv is None:
                run.task = asyncio.create_task(self._scripted(pod, log))
            else:
                try:
                    run.proc = await self._spawn(argv, env, pod)
                    run.task = asyncio.create_task(self._pump(run.proc, log))
                except OSError as e:
                    start_error = e
            if start_error is not None:
                msg = (f"failed to create containerd task: failed to create shim task: OCI runtime "
                       f"create failed: runc create failed: unable to start container process: "
                       f"exec: \"{argv[0]}\": {e_str(start_error)}: unknown")
                self._event(pod, "Warning", "Failed", f"Error: {msg}", name)
                code, reason = 128, "StartError"
                log.close()
            else:
                self.running[(pod["metadata"]["uid"], name)] = run
                self._event(pod, "Normal", "Started", f"Started container {name}", name)

                def running(p: dict[str, Any], cid: str = cid,
                            started_at: str = started_at) -> None:
                    st = self._cstatus(p, name)
                    st.update({"ready": True, "started": True, "containerID": cid,
                               "imageID": image_id,
                               "state": {"running": {"startedAt": started_at}}})
                    p["status"]["phase"] = "Running"
                    p["status"]["_ts"] = now(fake)
                    self._pod_conditions(p)
                self._update(pod, running)
                self.settling.discard(pod["metadata"]["uid"])
                assert run.task is not None
                try:
                    code = await run.task
                except asyncio.CancelledError:
                    me = asyncio.current_task()
                    if me is not None and me.cancelling():
                        raise
                    code = 128 + (run.killed_with or signal.SIGKILL)
                reason = "Completed" if code == 0 else (
                    "OOMKilled" if scenario == "oom" else "Error")
                log.close()
                self.running.pop((pod["metadata"]["uid"], name), None)
            self.settling.add(pod["metadata"]["uid"])
            finished_at = now(fake)
            term = {"exitCode": code, "reason": reason, "startedAt": started_at,
                    "finishedAt": finished_at, "containerID": cid}
            if start_error is not None:
                term["message"] = msg
            restart = (code != 0 and restart_policy in ("OnFailure", "Always")
                       and run.killed_with is None) or (restart_policy == "Always"
                                                        and run.killed_with is None)

            def terminated(p: dict[str, Any], cid: str = cid, restart: bool = restart,
                           term: dict[str, Any] = term, restarts: int = restarts) -> None:
                st = self._cstatus(p, name)
                st.update({"ready": False, "started": False, "containerID": cid,
                           "imageID": image_id})
                if restart:
                    st["lastState"] = {"terminated": term}
                    st["restartCount"] = restarts + 1
                    st["state"] = {"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {int(delays.crash_backoff)}s restarting failed "
                                   f"container={name} pod={p['metadata']['name']}_"
                                   f"{p['metadata']['namespace']}({p['metadata']['uid']})"}}
                else:
                    st["state"] = {"terminated": term}
                p["status"]["_ts"] = now(fake)
                self._pod_conditions(p)
            if self._update(pod, terminated) is None:
                return None
            if not restart:
                return code
            restarts += 1
            self._event(pod, "Warning", "BackOff",
                        f"Back-off restarting failed container {name} in pod "
                        f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                        f"({pod['metadata']['uid']})", name)
            await fake.clock.sleep(delays.crash_backoff)

    async def _image_pull_failure(self, pod: dict[str, Any], c: dict[str, Any]) -> None:
        fake, name, image = self.fake, c["name"], c["image"]
        err = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
               f'failed to resolve reference "{image}": {image}: not found')
        self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {err}', name)
        self._event(pod, "Warning", "Failed", "Error: ErrImagePull", name)

        def set_waiting(reason: str, message: str) -> Any:
            def fn(p: dict[str, Any]) -> None:
                st = self._cstatus(p, name)
                st["state"] = {"waiting": {"reason": reason, "message": message}}
            return fn
        self._update(pod, set_waiting("ErrImagePull", err))
        await fake.clock.sleep(fake.delays.image_pull_backoff)
        self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', name)
        self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff", name)
        self._update(pod, set_waiting("ImagePullBackOff", f'Back-off pulling image "{image}"'))
        self.settling.discard(pod["metadata"]["uid"])

    async def _scripted(self, pod: dict[str, Any], log: ContainerLog) -> int:
        ann = self._annotations(pod)
        scenario = ann.get(SCENARIO, "run")
        for line in (ann.get(LOGS) or "").splitlines():
            log.append(line + "\n")
        await self.fake.clock.sleep(float(ann.get(RUN_SECONDS, self.fake.delays.run_seconds)))
        if scenario == "oom":
            return 137
        if scenario == "fail":
            return int(ann.get(EXIT_CODE, 1))
        return int(ann.get(EXIT_CODE, 0))

    async def _sidecar(self, pod: dict[str, Any], name: str, log: ContainerLog) -> int:
        """An injected proxy: up until its pod goes or it is told to quit (exit 0)."""
        log.append("Envoy proxy is ready\n")
        quit_ = self.sidecar_quits.setdefault((pod["metadata"]["uid"], name), asyncio.Event())
        await quit_.wait()
        return 0

    async def _spawn(self, argv: list[str], env: dict[str, str],
                     pod: dict[str, Any]) -> asyncio.subprocess.Process:
        workdir = self.root / pod["metadata"]["uid"]
        workdir.mkdir(exist_ok=True)
        env = {**env, "HOME": env.get("HOME", str(workdir))}
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=str(workdir), start_new_session=True,
            limit=2 ** 21)

    async def _pump(self, proc: asyncio.subprocess.Process, log: ContainerLog) -> int:
        async def pump(stream: asyncio.StreamReader | None) -> None:
            if stream is None:
                return
            while True:
                try:
                    line = await stream.readline()
                except ValueError:  # a line longer than the limit
                    line = await stream.read(2 ** 20)
                if not line:
                    return
                log.append(line)
        await asyncio.gather(pump(proc.stdout), pump(proc.stderr))
        code = await proc.wait()
        return 128 - code if code < 0 else code

    def _signal(self, run: Running, sig: int, code: int | None = None) -> None:
        run.killed_with = run.killed_with or int(sig)
        if run.proc is not None and run.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, sig)
        elif run.proc is None and run.task is not None and not run.task.done():
            run.task.cancel()

    async def kill_pod(self, pod: dict[str, Any]) -> None:
        """Graceful delete: Killing events, SIGTERM, wait (capped), SIGKILL, final delete."""
        uid = pod["metadata"]["uid"]
        try:
            runs = [(name, run) for (puid, name), run in self.running.items() if puid == uid]
            for name, run in runs:
                self._event(pod, "Normal", "Killing", f"Stopping container {name}", name)
                self._signal(run, signal.SIGTERM)
            grace = min(float(pod["metadata"].get("deletionGracePeriodSeconds") or 0),
                        self.fake.delays.max_grace)
            for _, run in runs:
                if run.proc is not None:
                    try:
                        await asyncio.wait_for(asyncio.shield(run.proc.wait()), grace or 0.001)
                    except TimeoutError:
                        self._signal(run, signal.SIGKILL)
            # wait for the pod task to record the terminated states
            task = self.pods.get(uid)
            if task is not None and runs:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), 10)
            elif task is not None:
                task.cancel()
            cur = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            if cur is not None and cur["metadata"]["uid"] == uid:
                self.store.mark_deleted("pods", cur["metadata"]["namespace"],
                                        cur["metadata"]["name"], grace=0)
        finally:
            self.deleting.discard(uid)


def _set_pod_condition(conds: list[dict[str, Any]], new: dict[str, Any]) -> None:
    for i, c in enumerate(conds):
        if c["type"] == new["type"]:
            if c.get("status") == new.get("status") and c.get("reason") == new.get("reason"):
                return
            conds[i] = new
            return
    conds.append(new)


def _stable_hex(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def e_str(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "executable file not found in $PATH"
    if isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or str(e)


class ConfigError(Exception):
    pass


_FIELDREF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def resolve_field_ref(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = _FIELDREF.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.hostIP": status.get("hostIP"), "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise ConfigError(f'unsupported fieldPath: {path}')
    return simple[path] or ""


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion (``$$`` escapes)."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def build_env(pod: dict[str, Any], c: dict[str, Any], fake: FakeKubernetes) -> dict[str, str]:
    """Host PATH + Kubernetes-like variables + the container's env (fieldRef resolved)."""
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(fake.port or 0),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(fake.port or 0),
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{fake.port}",
    }
    for k in ("LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"):
        if k in os.environ:
            env[k] = os.environ[k]
    for e in c.get("env") or []:
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e.get("value") or ""), env)
        elif e.get("valueFrom"):
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[name] = resolve_field_ref(pod, vf["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in vf:
                raise ConfigError(f'configmap "{vf["configMapKeyRef"].get("name")}" not found')
            elif "secretKeyRef" in vf:
                raise ConfigError(f'secret "{vf["secretKeyRef"].get("name")}" not found')
            else:
                raise ConfigError(f"unsupported valueFrom for {name}")
        else:
            env[name] = ""
    if c.get("envFrom"):
        raise ConfigError("envFrom is not supported by the fake")
    return env


def container_argv(c: dict[str, Any], env: dict[str, str]) -> list[str] | None:
    """command+args run as a real local process; None = a scripted (image entrypoint) run."""
    command = [expand(str(x), env) for x in c.get("command") or []]
    args = [expand(str(x), env) for x in c.get("args") or []]
    argv = command + args
    return argv or None
