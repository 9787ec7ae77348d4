"""Simulated Volcano v1.16: PodGroups for batch/v1 Jobs and the gang scheduler.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

What is modelled follows volcano-sh/volcano at tag v1.16.0-alpha.1 (paths in that tree):

* the podgroup controller (pkg/controllers/podgroup/pg_controller.go ``processNextReq``,
  pg_controller_handler.go ``createNormalPodPGIfNotExist``/``buildPodGroupFromPod``): a pod with
  ``schedulerName: volcano`` and no ``scheduling.k8s.io/group-name`` annotation gets the
  PodGroup ``podgroup-<uid of its controller owner>`` (helpers.go ``GeneratePodgroupName``),
  owned like the pod, with ``minMember`` from the owner Job's annotation
  ``scheduling.volcano.sh/group-min-member`` (``getMinMemberFromUpperRes``: default 1, 1 when
  it is not a number or negative; ``--inherit-owner-annotations`` is on by default), ``queue``
  from the pod's ``scheduling.volcano.sh/queue-name`` annotation and phase ``Pending``; the pod
  is then annotated with the PodGroup's name (``updatePodAnnotations``);
* the scheduler's gang plugin (pkg/scheduler/plugins/gang/gang.go ``OnSessionClose``,
  pkg/scheduler/cache/cache.go ``RecordJobStatusEvent``/``taskUnschedulable``): a PodGroup's
  pods are bound only when at least ``minMember`` of them fit at once; otherwise none is, the
  PodGroup gets the condition ``Unschedulable=True`` (reason ``NotEnoughResources``, message
  "N/M tasks in gang unschedulable: pod group is not ready, …"; api/job_info.go ``FitError``)
  and a Warning event ``Unschedulable``, and each waiting pod ``PodScheduled=False``
  (``Unschedulable``) with a Warning ``FailedScheduling``. Bound gangs get ``Scheduled=True``.

"Fit" is the node's ``allocatable`` (the resources the test names, e.g. ``nvidia.com/gpu``)
against the requests of the pods bound there and not finished; resources not named are not
counted. Not modelled: queues as objects (capacity, state), the enqueue action's
``Inqueue`` phase, preemption/reclaim, minTaskMember, network topology, Volcano's own
``batch.volcano.sh`` Jobs.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from .events import NODE
from .store import WatchEvent

if TYPE_CHECKING:
    from .fake import FakeKubernetes

GROUP = "scheduling.volcano.sh"
VERSION = "v1beta1"
SCHEDULER = "volcano"
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"  # KubeGroupNameAnnotationKey
MIN_MEMBER_ANNOTATION = "scheduling.volcano.sh/group-min-member"
QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
PODGROUP_PREFIX = "podgroup-"  # batch/v1alpha1 PodgroupNamePrefix

_SUFFIX = {"m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def quantity(value: Any) -> float:
    text = str(value)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIX[suffix]
    return float(text)


def requests_of(pod: dict[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        amounts = res.get("requests") or res.get("limits") or {}
        for name, value in amounts.items():
            total[name] = total.get(name, 0.0) + quantity(value)
    return total


def min_member(job: dict[str, Any] | None) -> int:
    """``getMinMemberFromUpperRes``: the owner's annotation, else 1."""
    value = ((job or {}).get("metadata", {}).get("annotations") or {}).get(MIN_MEMBER_ANNOTATION)
    if value is None:
        return 1
    try:
        number = int(value)
    except ValueError:
        return 1
    return number if number >= 0 else 1


class Volcano:
    def __init__(self, fake: FakeKubernetes, allocatable: dict[str, int]) -> None:
        self.fake = fake
        self.store = fake.store
        self.allocatable = {k: float(v) for k, v in allocatable.items()}
        self.wake = asyncio.Event()
        self.busy = False
        self.dirty = False
        self.bound: dict[str, asyncio.Future[None]] = {}  # pod uid -> set when bound
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.store.listeners.append(self.on_event)
        self.task = asyncio.create_task(self.run(), name="k8sfake-volcano")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    @property
    def idle(self) -> bool:
        return not self.dirty and not self.busy

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource == "jobs" and ev.type == "DELETED":
            # The garbage collector deletes the PodGroup with its owner.
            uid, ns = ev.new["metadata"]["uid"], ev.new["metadata"]["namespace"]
            for pg in self.store.list("podgroups", ns):
                if any(r.get("uid") == uid for r in pg["metadata"].get("ownerReferences") or []):
                    self.store.remove("podgroups", ns, pg["metadata"]["name"])
        if ev.resource in ("pods", "podgroups"):
            self.dirty = True
            self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            self.busy, self.dirty = True, False
            try:
                self.create_podgroups()
                self.schedule()
            except Exception:  # noqa: BLE001 - a bug in the fake must be visible
                import traceback
                traceback.print_exc()
                self.fake.controller_errors.append(traceback.format_exc())
            finally:
                self.busy = False
            await asyncio.sleep(0)

    async def wait_bound(self, pod: dict[str, Any]) -> None:
        """For the kubelet: until the gang scheduler has bound this pod."""
        uid = pod["metadata"]["uid"]
        current = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is not None and current["spec"].get("nodeName"):
            return  # bound before the kubelet got here
        future = self.bound.setdefault(uid, asyncio.get_running_loop().create_future())
        self.dirty = True
        self.wake.set()
        await future

    # -- the podgroup controller -----------------------------------------------------------
    def create_podgroups(self) -> None:
        for pod in self.store.list("pods"):
            meta = pod["metadata"]
            if pod["spec"].get("schedulerName") != SCHEDULER or meta.get("deletionTimestamp"):
                continue
            if (meta.get("annotations") or {}).get(GROUP_NAME_ANNOTATION):
                continue
            owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")),
                         None)
            name = PODGROUP_PREFIX + (owner["uid"] if owner else meta["uid"])
            ns = meta["namespace"]
            if self.store.get("podgroups", ns, name) is None:
                job = (self.store.get("jobs", ns, owner["name"])
                       if owner and owner.get("kind") == "Job" else None)
                members = min_member(job)
                resources = requests_of(pod)
                pg = {
                    "metadata": {
                        "name": name, "namespace": ns, "annotations": {}, "labels": {},
                        "ownerReferences": copy.deepcopy(meta.get("ownerReferences")) or [
                            {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                             "uid": meta["uid"], "controller": True,
                             "blockOwnerDeletion": True}],
                    },
                    "spec": {"minMember": members,
                             "minResources": {k: _fmt(v * members) for k, v in resources.items()}},
                    "status": {"phase": "Pending"},
                }
                queue = (meta.get("annotations") or {}).get(QUEUE_ANNOTATION)
                if queue:
                    pg["spec"]["queue"] = queue
                if pod["spec"].get("priorityClassName"):
                    pg["spec"]["priorityClassName"] = pod["spec"]["priorityClassName"]
                self.store.create("podgroups", pg)
            pod["metadata"].setdefault("annotations", {})[GROUP_NAME_ANNOTATION] = name
            self.store.replace("pods", pod)

    # -- the gang scheduler ------------------------------------------------------------------
    def _used(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pod in self.store.list("pods"):
            if not pod["spec"].get("nodeName"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for k, v in requests_of(pod).items():
                used[k] = used.get(k, 0.0) + v
        return used

    def schedule(self) -> None:
        used = self._used()
        for pg in self.store.list("podgroups"):
            ns, name = pg["metadata"]["namespace"], pg["metadata"]["name"]
            members = [p for p in self.store.list("pods", ns)
                       if (p["metadata"].get("annotations") or {}).get(GROUP_NAME_ANNOTATION) == name
                       and not p["metadata"].get("deletionTimestamp")]
            alive = [p for p in members if (p.get("status") or {}).get("phase")
                     not in ("Succeeded", "Failed")]
            ready = [p for p in alive if p["spec"].get("nodeName")]
            waiting = sorted((p for p in alive if not p["spec"].get("nodeName")),
                             key=lambda p: p["metadata"]["name"])
            if not waiting:
                continue
            fitting, short = [], None
            trial = dict(used)
            for pod in waiting:
                need = requests_of(pod)
                lacking = [k for k, cap in self.allocatable.items()
                           if trial.get(k, 0.0) + need.get(k, 0.0) > cap]
                if lacking:
                    short = short or (pod, lacking)
                    continue
                fitting.append(pod)
                for k, v in need.items():
                    trial[k] = trial.get(k, 0.0) + v
            min_available = pg["spec"].get("minMember", 1)
            if fitting and len(ready) + len(fitting) >= min_available:
                used = trial
                for pod in fitting:
                    self._bind(pod)
                self._scheduled(pg)
            else:
                self._unschedulable(pg, members, waiting, min_available, short)

    def _bind(self, pod: dict[str, Any]) -> None:
        pod["spec"]["nodeName"] = NODE
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": self.fake.clock.rfc3339()})
        pod = self.store.replace("pods", pod)
        meta = pod["metadata"]
        self.fake.recorder.legacy(pod, "Normal", "Scheduled",
                                  f"Successfully assigned {meta['namespace']}/{meta['name']} "
                                  f"to {NODE}", component=SCHEDULER)
        future = self.bound.pop(meta["uid"], None)
        if future is not None and not future.done():
            future.set_result(None)

    def _set_condition(self, pg: dict[str, Any], cond: dict[str, Any]) -> bool:
        conds = pg.setdefault("status", {}).setdefault("conditions", [])
        for i, old in enumerate(conds):
            if old["type"] == cond["type"]:
                if all(old.get(k) == cond.get(k) for k in ("status", "reason", "message")):
                    return False
                conds[i] = cond
                return True
        conds.append(cond)
        return True

    def _scheduled(self, pg: dict[str, Any]) -> None:
        changed = self._set_condition(pg, {
            "type": "Scheduled", "status": "True", "reason": "tasks in gang are ready to be "
            "scheduled", "message": "", "lastTransitionTime": self.fake.clock.rfc3339()})
        # The Unschedulable condition of an earlier session stays as it was (conditions are
        # replaced per type, framework/session.go UpdatePodGroupCondition); the phase tells:
        # Running once minMember pods are bound (session.go getPodGroupPhase).
        if pg["status"].get("phase") != "Running":
            pg["status"]["phase"] = "Running"
            changed = True
        if changed:
            self.store.replace("podgroups", pg)

    def _unschedulable(self, pg: dict[str, Any], members: list[dict[str, Any]],
                       waiting: list[dict[str, Any]], min_available: int,
                       short: tuple[dict[str, Any], list[str]] | None) -> None:
        if short is not None:
            pod, lacking = short
            why = ("0/1 nodes are unavailable: "
                   + ", ".join(f"1 Insufficient {k}" for k in lacking) + ".")
            origin = f". Origin reason is {pod['metadata']['name']}: {why}"
        else:
            why = "0/1 nodes are unavailable: gang requires more tasks than exist."
            origin = ""
        unready = min_available - (len(members) - len(waiting))
        message = (f"{unready}/{len(members)} tasks in gang unschedulable: pod group is not "
                   f"ready, {len(waiting)} Pending, {min_available} minAvailable; Pending: "
                   f"{len(waiting)} Unschedulable{origin}")
        changed = self._set_condition(pg, {
            "type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
            "message": message, "transitionID": "fake-session",
            "lastTransitionTime": self.fake.clock.rfc3339()})
        if changed:
            pg = self.store.replace("podgroups", pg)
            self.fake.recorder.legacy(pg, "Warning", "Unschedulable", message,
                                      component=SCHEDULER)
        for pod in waiting:
            conds = pod.setdefault("status", {}).setdefault("conditions", [])
            current = next((c for c in conds if c.get("type") == "PodScheduled"), None)
            if current and current.get("reason") == "Unschedulable" \
                    and current.get("message") == why:
                continue
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": self.fake.clock.rfc3339(),
                          "reason": "Unschedulable", "message": why})
            pod = self.store.replace("pods", pod)
            self.fake.recorder.legacy(pod, "Warning", "FailedScheduling", why,
                                      component=SCHEDULER)


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{round(value * 1000)}m"
