"""Simulated Kueue v0.19: Workloads for batch/v1 Jobs, their admission and deactivation.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

What is modelled follows kubernetes-sigs/kueue at tag v0.19.2 (paths below are in that tree):

* the Job webhook suspends a Job labelled ``kueue.x-k8s.io/queue-name`` on create
  (pkg/controller/jobs/job/job_webhook.go ``Default`` -> jobframework ``ApplyDefaultForSuspend``);
* the job reconciler (pkg/controller/jobframework/reconciler.go ``ReconcileGenericJob``): one
  Workload per Job (``job-<name>-<hash5>``, owner reference to the Job, label
  ``kueue.x-k8s.io/job-uid``; workload_names.go, ``ConstructWorkload``), event
  ``CreatedWorkload``; a suspended Job whose Workload is admitted is unsuspended ("Job admitted,
  unsuspending", event ``Started``); a running Job whose Workload is not admitted is suspended
  again (``stopJob``, event ``Stopped``); an evicted Workload stops its Job and, once the Job
  has no active pod, loses its quota reservation; a finished Job finishes its Workload;
* the workload controller (pkg/controller/core/workload_controller.go ``Reconcile``):
  ``spec.active: false`` evicts the Workload with reason ``Deactivated`` ("The workload is
  deactivated"; pkg/workload/evict/evict.go, event ``EvictedDueToDeactivated`` when it held
  an admission);
* the scheduler (pkg/scheduler/scheduler.go): ``admit`` reserves quota and admits
  (``QuotaReserved``/``Admitted`` conditions, ``status.admission``, events ``QuotaReserved`` and
  ``Admitted``; pkg/workload/workload.go ``SetQuotaReservation``, admissionchecks.go
  ``SyncAdmittedCondition``); ``hold`` is ``requeueAndUpdate`` for a workload that does not
  fit: ``QuotaReserved=False`` with the scheduler's reason and message, and a Warning event of
  that reason on the Workload. It never admits an inactive Workload;
* a label ``kueue.x-k8s.io/priority-class`` naming no WorkloadPriorityClass: no Workload is
  created and the Job stays suspended; the Warning event ``WorkloadPriorityClassNotFound``
  ('WorkloadPriorityClass "x" not found') on the Job is the one Kueue's main branch writes
  since commit 156bd6df06 (jobframework ``ExtractPriority``); v0.19.2 only logs the error.

Kueue writes its events through controller-runtime's events.k8s.io recorder (``eventTime``,
``action``; pkg/controller/jobframework/setup.go ``GetEventRecorder``), modelled as such.
Not modelled (refused or absent): ClusterQueues/LocalQueues/ResourceFlavors as objects (quota is
the ``capacity`` count or the test's ``admit``/``hold``), admission checks, preemption,
waitForPodsReady, partial admission, the v1beta1 API (only v1beta2 is served).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import FieldError
from .store import WatchEvent

if TYPE_CHECKING:
    from .fake import FakeKubernetes

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"  # pkg/controller/constants/constants.go
STOPPING_ANNOTATION = "kueue.x-k8s.io/stopping"  # pkg/controller/jobs/job/job_controller.go
JOB_CONTROLLER = "batch/job-kueue-controller"
WORKLOAD_CONTROLLER = "kueue-workload-controller"
ADMISSION = "kueue-admission"
# The on-demand visibility API (apis/visibility/v1beta2/types.go; pkg/visibility/server.go
# installs v1beta2 and v1beta1 with the same storage), an aggregated API server of its own.
VISIBILITY_GROUP = "visibility.kueue.x-k8s.io"
VISIBILITY_PATH = re.compile(r"^/apis/visibility\.kueue\.x-k8s\.io/(v1beta2|v1beta1)/namespaces/"
                             r"([^/]+)/localqueues/([^/]+)/pendingworkloads$")
DEFAULT_PENDING_LIMIT = 1000  # pkg/constants DefaultPendingWorkloadsLimit
MAX_PENDING_LIMIT = 100_000  # MaxPendingWorkloadsLimit
JOB_WEBHOOK = "vjob.kb.io"  # pkg/controller/jobs/job/job_webhook.go (kubebuilder marker)


def workload_name(job: dict[str, Any]) -> str:
    """jobframework/workload_names.go ``GetWorkloadNameForOwnerWithGVK``."""
    meta = job["metadata"]
    digest = hashlib.sha1(
        "\n".join(["Job", "batch", meta["name"], meta["uid"]]).encode()).hexdigest()
    return f"job-{meta['name']}"[:253 - 6] + "-" + digest[:5]


def condition_of(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(obj: dict[str, Any], type_: str) -> bool:
    cond = condition_of(obj, type_)
    return cond is not None and cond.get("status") == "True"


def is_active(wl: dict[str, Any]) -> bool:
    return (wl.get("spec") or {}).get("active", True) is not False


def _job_finished(job: dict[str, Any]) -> dict[str, Any] | None:
    """pkg/controller/jobs/job/job_controller.go ``Finished``: Complete or Failed."""
    for type_ in ("Complete", "Failed"):
        cond = condition_of(job, type_)
        if cond is not None and cond.get("status") == "True":
            return cond
    return None


def _immutable(path: str, value: str) -> str:
    return f'{path}: Invalid value: "{value}": field is immutable'


def validate_job_update(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Kueue's Job webhook on update (jobframework/validation.go ``ValidateJobOnUpdate``), the
    rules about the labels jobgraph changes: ``validateUpdateForQueueName`` (the queue name is
    immutable unless the new Job is suspended) and ``ValidateUpdateForWorkloadPriorityClassName``
    (a class cannot be added to a running Job, nor removed from any)."""
    before = old["metadata"].get("labels") or {}
    after = new["metadata"].get("labels") or {}
    suspended = bool((new.get("spec") or {}).get("suspend"))
    errs = []
    if not suspended and before.get(QUEUE_LABEL) != after.get(QUEUE_LABEL):
        errs.append(_immutable(f"metadata.labels[{QUEUE_LABEL}]", after.get(QUEUE_LABEL, "")))
    path = f"metadata.labels[{PRIORITY_LABEL}]"
    if not suspended and not before.get(PRIORITY_LABEL) and after.get(PRIORITY_LABEL):
        errs.append(f'{path}: Invalid value: "{after[PRIORITY_LABEL]}": WorkloadPriorityClass '
                    f"cannot be added to a non-suspended workload")
    if before.get(PRIORITY_LABEL) and not after.get(PRIORITY_LABEL):
        errs.append(f'{path}: Invalid value: "": WorkloadPriorityClass cannot be removed from a '
                    f"workload")
    return errs


def webhook_denied(errs: list[str]) -> errors.StatusError:
    """controller-runtime turns a webhook's non-Status error into ``Denied`` (403 Forbidden),
    and the apiserver prefixes the webhook's name (admission/plugin/webhook/errors
    ``ToStatusErr``); ``field.ErrorList.ToAggregate`` joins several as ``[a, b]``."""
    message = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return errors.StatusError(errors.status_body(
        403, "Forbidden", f'admission webhook "{JOB_WEBHOOK}" denied the request: {message}'))


def validate_workload_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Kueue's workload webhook (pkg/webhooks/workload_webhook.go ``ValidateWorkloadUpdate``)
    keeps podSets immutable, and queueName while admitted; the fake lets only ``spec.active``
    change and refuses the rest as immutable (narrow: it models no other spec update)."""
    active = (new.get("spec") or {}).get("active")
    if active is not None and not isinstance(active, bool):
        # The CRD's structural schema (apiextensions-apiserver validation.go: TypeInvalid).
        kind = {str: "string", int: "integer", float: "number", list: "array",
                dict: "object"}.get(type(active), "unknown")
        return [FieldError("FieldValueTypeInvalid", "spec.active",
                           f'Invalid value: "{kind}": spec.active in body must be of type '
                           f'boolean: "{kind}"')]
    before, after = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    before.pop("active", None)
    after.pop("active", None)
    if before == after:
        return []
    return [errors.invalid("spec", after, "field is immutable")]


class Kueue:
    def __init__(self, fake: FakeKubernetes, capacity: int | None,
                 cluster_queue: str = "cluster-queue") -> None:
        self.fake = fake
        self.store = fake.store
        self.capacity = capacity  # admit automatically while fewer are admitted (None: tests admit)
        self.cluster_queue = cluster_queue
        self.priority_classes: dict[str, int] = {}  # WorkloadPriorityClass name -> value
        # Kueue after commit 156bd6df06 reports a missing class as an event; v0.19.2 only
        # logs it (False models that).
        self.priority_class_events = True
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self.pending: set[tuple[str, str, str]] = set()
        self.busy = False
        self._warned: set[tuple[str, str]] = set()  # (job uid, class) already reported
        self.task: asyncio.Task[None] | None = None
        # The visibility API is served only when a test turns it on (its APIService is
        # registered); else its paths are 404 like any unknown group. `local_queues`: the
        # LocalQueues that exist (all in `cluster_queue`); None: any name the Workloads use.
        self.visibility = False
        self.local_queues: set[str] | None = None

    # -- plumbing ------------------------------------------------------------------------
    def start(self) -> None:
        self.store.listeners.append(self.on_event)
        self.task = asyncio.create_task(self.run(), name="k8sfake-kueue")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.busy

    def enqueue(self, kind: str, ns: str, name: str) -> None:
        key = (kind, ns, name)
        if key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    def on_event(self, ev: WatchEvent) -> None:
        meta = ev.new["metadata"]
        ns = meta.get("namespace", "")
        if ev.resource == "jobs":
            if ev.type == "DELETED":
                # The garbage collector deletes the Workload with its owner.
                for wl in self.store.list("workloads", ns):
                    if self._owner_uid(wl) == meta["uid"]:
                        self.store.remove("workloads", ns, wl["metadata"]["name"])
            else:
                self.enqueue("job", ns, meta["name"])
        elif ev.resource == "workloads":
            if ev.type != "DELETED":
                self.enqueue("workload", ns, meta["name"])
            owner = self._owner_name(ev.new)
            if owner:
                self.enqueue("job", ns, owner)
        elif ev.resource == "pods":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Job":
                    self.enqueue("job", ns, ref["name"])
        if ev.resource in ("jobs", "workloads"):
            self.tick()

    async def run(self) -> None:
        while True:
            key = await self.queue.get()
            self.busy = True
            self.pending.discard(key)
            try:
                kind, ns, name = key
                if kind == "job":
                    self.reconcile_job(ns, name)
                else:
                    self.reconcile_workload(ns, name)
            except Exception:  # noqa: BLE001 - a bug in the fake must be visible
                import traceback
                traceback.print_exc()
                self.fake.controller_errors.append(traceback.format_exc())
            finally:
                self.busy = False
            await asyncio.sleep(0)

    @staticmethod
    def _owner_uid(wl: dict[str, Any]) -> str | None:
        for ref in wl["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                return str(ref.get("uid"))
        return None

    @staticmethod
    def _owner_name(wl: dict[str, Any]) -> str | None:
        for ref in wl["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                return str(ref.get("name"))
        return None

    def workload_of(self, job: dict[str, Any]) -> dict[str, Any] | None:
        uid = job["metadata"]["uid"]
        for wl in self.store.list("workloads", job["metadata"]["namespace"]):
            if self._owner_uid(wl) == uid:
                return wl
        return None

    def _event(self, obj: dict[str, Any], type_: str, reason: str, message: str,
               component: str) -> None:
        self.fake.recorder.new(obj, type_, reason, message, component=component, action=reason,
                               instance=f"{component}-kueue-controller-manager-0")

    def _now(self) -> str:
        return self.fake.clock.rfc3339()

    def _set_condition(self, wl: dict[str, Any], type_: str, status: str, reason: str,
                       message: str) -> None:
        """apimeta.SetStatusCondition: lastTransitionTime moves only when the status does."""
        conds = wl.setdefault("status", {}).setdefault("conditions", [])
        new = {"type": type_, "status": status, "reason": reason, "message": message,
               "observedGeneration": wl["metadata"].get("generation", 1),
               "lastTransitionTime": self._now()}
        for i, cond in enumerate(conds):
            if cond["type"] == type_:
                if cond["status"] == status:
                    new["lastTransitionTime"] = cond["lastTransitionTime"]
                conds[i] = new
                return
        conds.append(new)

    # -- the job webhook -----------------------------------------------------------------
    @staticmethod
    def mutate_job(job: dict[str, Any]) -> None:
        """Jobs with a queue name are created suspended (``ApplyDefaultForSuspend``)."""
        if QUEUE_LABEL in (job["metadata"].get("labels") or {}):
            job.setdefault("spec", {})["suspend"] = True

    # -- the job reconciler ----------------------------------------------------------------
    def reconcile_job(self, ns: str, name: str) -> None:
        job = self.store.get("jobs", ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        labels = job["metadata"].get("labels") or {}
        if QUEUE_LABEL not in labels:
            return  # manageJobsWithoutQueueName is false by default
        wl = self.workload_of(job)
        if wl is not None and is_true(wl, "Finished"):
            return
        finished = _job_finished(job)
        if finished is not None:
            if wl is not None:
                self._set_condition(wl, "Finished", "True",
                                    "Failed" if finished["type"] == "Failed" else "Succeeded",
                                    finished.get("message") or "")
                self.store.replace("workloads", wl)
                self._event(job, "Normal", "FinishedWorkload",
                            f"Workload '{ns}/{wl['metadata']['name']}' is declared finished",
                            JOB_CONTROLLER)
            return
        if wl is None:
            self._create_workload(job)
            return
        evicted = condition_of(wl, "Evicted")
        if evicted is not None and evicted["status"] == "True":
            self._stop_job(job, evicted.get("message") or "")
            job = self.store.get("jobs", ns, name) or job
            if is_true(wl, "QuotaReserved") and not (job.get("status") or {}).get("active"):
                # "The job is no longer active, clear the workloads admission"
                self._set_condition(wl, "QuotaReserved", "False", "Pending",
                                    evicted.get("message") or "")
                wl["status"].pop("admission", None)
                self._set_condition(wl, "Admitted", "False", "NoReservation",
                                    "The workload has no reservation")
                self._set_condition(wl, "Requeued", "False", evicted.get("reason") or "",
                                    evicted.get("message") or "")
                self.store.replace("workloads", wl)
            return
        self._update_priority(job, wl)
        if job["spec"].get("suspend"):
            if not is_true(wl, "Admitted"):
                self._queue_name_change(job, wl)
            if is_true(wl, "Admitted"):
                # "Job admitted, unsuspending" (startJob)
                job["spec"]["suspend"] = False
                self.store.replace("jobs", job)
                cq = (wl["status"].get("admission") or {}).get("clusterQueue", self.cluster_queue)
                self._event(job, "Normal", "Started", f"Admitted by clusterQueue {cq}",
                            JOB_CONTROLLER)
            return
        if not is_true(wl, "Admitted"):
            # "Running job is not admitted by a cluster queue, suspending"
            self._stop_job(job, "Not admitted by cluster queue")

    def _queue_name_change(self, job: dict[str, Any], wl: dict[str, Any]) -> None:
        """reconciler.go ``QueueNameChange``: a suspended Job whose Workload is not admitted
        moves its Workload to the LocalQueue its label now names."""
        queue = (job["metadata"].get("labels") or {}).get(QUEUE_LABEL)
        if queue and wl["spec"].get("queueName") != queue:
            wl["spec"]["queueName"] = queue
            self.store.replace("workloads", wl)

    def _update_priority(self, job: dict[str, Any], wl: dict[str, Any]) -> None:
        """reconciler.go ``UpdateWorkloadPriority``: the Job's priority-class label names
        another WorkloadPriorityClass than the Workload's: the Workload takes its reference and
        value (left alone when it reserved quota without a class), event ``UpdatedWorkload``.
        A class that does not exist fails the reconcile (``ExtractPriority``): nothing moves."""
        name = (job["metadata"].get("labels") or {}).get(PRIORITY_LABEL)
        ref = wl["spec"].get("priorityClassRef")
        if not name or (ref or {}).get("name") == name or name not in self.priority_classes:
            return
        if ref is None and is_true(wl, "QuotaReserved"):
            return
        wl["spec"]["priorityClassRef"] = {"group": GROUP, "kind": "WorkloadPriorityClass",
                                          "name": name}
        wl["spec"]["priority"] = self.priority_classes[name]
        wl = self.store.replace("workloads", wl)
        ns = wl["metadata"]["namespace"]
        self._event(job, "Normal", "UpdatedWorkload",
                    f"Updated workload priority class: {ns}/{wl['metadata']['name']}",
                    JOB_CONTROLLER)

    def _create_workload(self, job: dict[str, Any]) -> None:
        if (job.get("status") or {}).get("active"):
            return  # handleJobWithNoWorkload: "Job is suspended but still has active pods"
        meta = job["metadata"]
        labels = meta.get("labels") or {}
        priority = 0
        class_name = labels.get(PRIORITY_LABEL)
        if class_name:
            if class_name not in self.priority_classes:
                if self.priority_class_events and (meta["uid"], class_name) not in self._warned:
                    self._warned.add((meta["uid"], class_name))
                    self._event(job, "Warning", "WorkloadPriorityClassNotFound",
                                f'WorkloadPriorityClass "{class_name}" not found', JOB_CONTROLLER)
                return
            priority = self.priority_classes[class_name]
        spec = job["spec"]
        template = copy.deepcopy(spec["template"])
        wl: dict[str, Any] = {
            "metadata": {
                "name": workload_name(job), "namespace": meta["namespace"],
                "labels": {JOB_UID_LABEL: meta["uid"]},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {
                "active": True,
                "queueName": labels[QUEUE_LABEL],
                "podSets": [{"name": "main", "count": spec.get("parallelism", 1),
                             "template": template}],
                "priority": priority,
            },
            "status": {},
        }
        if class_name:
            wl["spec"]["priorityClassRef"] = {"group": GROUP, "kind": "WorkloadPriorityClass",
                                              "name": class_name}
        wl = self.store.create("workloads", wl)
        self._event(job, "Normal", "CreatedWorkload",
                    f"Created Workload: {meta['namespace']}/{wl['metadata']['name']}",
                    JOB_CONTROLLER)

    def _stop_job(self, job: dict[str, Any], message: str) -> None:
        """pkg/controller/jobs/job/job_controller.go ``Stop``: suspend (with the stopping
        annotation), reset startTime, drop the annotation; event ``Stopped`` if it ran."""
        if job["spec"].get("suspend"):
            return
        job["spec"]["suspend"] = True
        job["metadata"].setdefault("annotations", {})[STOPPING_ANNOTATION] = "true"
        job = self.store.replace("jobs", job)
        if (job.get("status") or {}).get("startTime"):
            job["status"].pop("startTime", None)
            job = self.store.replace("jobs", job)
        job["metadata"]["annotations"].pop(STOPPING_ANNOTATION, None)
        job = self.store.replace("jobs", job)
        self._event(job, "Normal", "Stopped", message, JOB_CONTROLLER)

    # -- the workload controller -----------------------------------------------------------
    def reconcile_workload(self, ns: str, name: str) -> None:
        wl = self.store.get("workloads", ns, name)
        if wl is None:
            return
        if is_active(wl):
            requeued = condition_of(wl, "Requeued")
            if requeued and requeued["status"] == "False" and requeued["reason"] == "Deactivated":
                # Active again: "The workload was reactivated" (Requeued=True, Reactivated);
                # it goes back into its ClusterQueue, in its place (queue order: priority,
                # then creation time; workload.go GetQueueOrderTimestamp).
                self._set_condition(wl, "Requeued", "True", "Reactivated",
                                    "The workload was reactivated")
                self.store.replace("workloads", wl)
            return
        if is_true(wl, "Evicted"):
            return
        had_admission = bool((wl.get("status") or {}).get("admission"))
        message = "The workload is deactivated"
        self._set_condition(wl, "Evicted", "True", "Deactivated", message)
        wl = self.store.replace("workloads", wl)
        if had_admission:
            self._event(wl, "Normal", "EvictedDueToDeactivated", message, WORKLOAD_CONTROLLER)

    # -- the scheduler -----------------------------------------------------------------------
    def admit(self, job_name: str, ns: str) -> dict[str, Any]:
        """Reserve quota in the ClusterQueue and admit (no admission checks): what the
        scheduler does when the Workload fits. Inactive or admitted Workloads are left."""
        job = self.store.require("jobs", ns, job_name)
        wl = self.workload_of(job)
        if wl is None:
            raise AssertionError(f"job {job_name} has no Workload (yet)")
        if not is_active(wl) or is_true(wl, "QuotaReserved") or is_true(wl, "Finished"):
            return wl
        count = wl["spec"]["podSets"][0]["count"]
        wl["status"]["admission"] = {"clusterQueue": self.cluster_queue, "podSetAssignments": [
            {"name": "main", "flavors": {}, "resourceUsage": {}, "count": count}]}
        self._set_condition(wl, "QuotaReserved", "True", "QuotaReserved",
                            f"Quota reserved in ClusterQueue {self.cluster_queue}")
        self._set_condition(wl, "Admitted", "True", "Admitted", "The workload is admitted")
        for type_ in ("Evicted", "Requeued"):
            cond = condition_of(wl, type_)
            if cond is not None and type_ == "Evicted":
                self._set_condition(wl, "Evicted", "False", cond["reason"], cond["message"])
        wl = self.store.replace("workloads", wl)
        self._event(wl, "Normal", "QuotaReserved",
                    f"Quota reserved in ClusterQueue {self.cluster_queue}, wait time since "
                    f"queued was 0s", ADMISSION)
        self._event(wl, "Normal", "Admitted",
                    f"Admitted by ClusterQueue {self.cluster_queue}, wait time since "
                    f"reservation was 0s", ADMISSION)
        return wl

    def hold(self, job_name: str, ns: str, reason: str, message: str) -> dict[str, Any]:
        """The scheduler found no room (``requeueAndUpdate``): ``QuotaReserved=False`` with
        ``reason`` (``Pending`` by default in v0.19; ``WaitingForQuota``, ``NoMatchingFlavor``,
        ``ExceedsMaxQuota``… with the UnadmittedWorkloadsObservability gate) and the
        flavor assigner's ``message``; a Warning event of that reason on the Workload."""
        job = self.store.require("jobs", ns, job_name)
        wl = self.workload_of(job)
        if wl is None:
            raise AssertionError(f"job {job_name} has no Workload (yet)")
        self._set_condition(wl, "QuotaReserved", "False", reason, message)
        wl = self.store.replace("workloads", wl)
        self._event(wl, "Warning", reason, message, ADMISSION)
        return wl

    # -- the visibility API ----------------------------------------------------------------
    def queue_order(self) -> list[dict[str, Any]]:
        """The ClusterQueue's pending Workloads in queue order (cluster_queue.go ``Snapshot``,
        ``baseCompareFunc``: higher priority first, then the queue-order timestamp — the
        creation time here —, then the uid). Inactive Workloads are not queued."""
        waiting = [w for w in self.store.list("workloads")
                   if is_active(w) and not is_true(w, "QuotaReserved")
                   and not is_true(w, "Finished")]
        return sorted(waiting, key=lambda w: (-int(w["spec"].get("priority") or 0),
                                              w["metadata"]["creationTimestamp"],
                                              w["metadata"]["uid"]))

    def pending_workloads(self, version: str, ns: str, local_queue: str,
                          q: dict[str, Any]) -> dict[str, Any]:
        """``GET .../localqueues/{lq}/pendingworkloads`` (pkg/visibility/storage/
        pending_workloads_lq.go): the LocalQueue's share of its ClusterQueue's pending
        Workloads, positions counted from 0, `offset`/`limit` bounded (utils.go)."""
        if self.local_queues is not None and local_queue not in self.local_queues:
            raise errors.not_found("localqueue", VISIBILITY_GROUP, local_queue)
        try:
            limit = int(q.get("limit", DEFAULT_PENDING_LIMIT))
            offset = int(q.get("offset", 0))
        except ValueError:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{q.get("offset")}": invalid '
                                     f"syntax") from None
        limit, offset = min(max(limit, 0), MAX_PENDING_LIMIT), max(offset, 0)
        items: list[dict[str, Any]] = []
        skipped = 0
        for index, wl in enumerate(self.queue_order()):
            if len(items) >= limit:
                break
            meta = wl["metadata"]
            if meta["namespace"] != ns or wl["spec"].get("queueName") != local_queue:
                continue
            if skipped < offset:
                skipped += 1
                continue
            items.append({
                "metadata": {
                    "name": meta["name"], "namespace": meta["namespace"],
                    "creationTimestamp": meta["creationTimestamp"],
                    "ownerReferences": [{k: r[k] for k in ("apiVersion", "kind", "name", "uid")}
                                        for r in meta.get("ownerReferences") or []]},
                "priority": int(wl["spec"].get("priority") or 0),
                "localQueueName": local_queue,
                "positionInClusterQueue": index,
                "positionInLocalQueue": len(items) + offset,
            })
        return {"kind": "PendingWorkloadsSummary", "apiVersion": f"{VISIBILITY_GROUP}/{version}",
                "metadata": {}, "items": items}

    def add_priority_class(self, name: str, value: int) -> None:
        """Create a WorkloadPriorityClass: Jobs waiting for it get their Workload."""
        self.priority_classes[name] = value
        for job in self.store.list("jobs"):
            if (job["metadata"].get("labels") or {}).get(PRIORITY_LABEL) == name:
                self.enqueue("job", job["metadata"]["namespace"], job["metadata"]["name"])

    def tick(self) -> None:
        """With a ``capacity``, admit the oldest active Workloads while fewer are admitted."""
        if self.capacity is None:
            return
        workloads = [w for w in self.store.list("workloads") if not is_true(w, "Finished")]
        admitted = [w for w in workloads if is_true(w, "QuotaReserved")]
        waiting = sorted((w for w in workloads if is_active(w) and not is_true(w, "QuotaReserved")),
                         key=lambda w: int(w["metadata"]["resourceVersion"]))
        for wl in waiting[:max(0, self.capacity - len(admitted))]:
            owner = self._owner_name(wl)
            if owner:
                asyncio.get_running_loop().call_soon(
                    self._admit_later, owner, wl["metadata"]["namespace"])

    def _admit_later(self, job_name: str, ns: str) -> None:
        admitted = [w for w in self.store.list("workloads")
                    if is_true(w, "QuotaReserved") and not is_true(w, "Finished")]
        job = self.store.get("jobs", ns, job_name)
        if (job is not None and self.workload_of(job) is not None
                and len(admitted) < (self.capacity or 0)):
            self.admit(job_name, ns)
