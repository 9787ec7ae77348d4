"""core/v1 Events written by the simulated controllers (legacy and new recorder shapes).

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import secrets
from typing import Any

from .store import Store

NODE = "fake-node-1"


def involved(obj: dict[str, Any], field_path: str | None = None) -> dict[str, Any]:
    meta = obj["metadata"]
    ref = {"kind": obj["kind"], "namespace": meta.get("namespace"), "name": meta["name"],
           "uid": meta["uid"], "apiVersion": obj["apiVersion"],
           "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store

    def legacy(self, obj: dict[str, Any], type_: str, reason: str, message: str, *,
               component: str, host: str | None = None,
               field_path: str | None = None) -> dict[str, Any]:
        """client-go record.EventRecorder shape: count/firstTimestamp/lastTimestamp."""
        ref = involved(obj, field_path)
        ns = ref["namespace"] or "default"
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        # the correlator aggregates identical events: bump count and lastTimestamp
        for existing in self.store.list("events", ns):
            io = existing.get("involvedObject", {})
            if (io.get("uid") == ref["uid"] and io.get("fieldPath") == ref.get("fieldPath")
                    and existing.get("reason") == reason and existing.get("message") == message
                    and existing.get("source") == source and existing.get("type") == type_):
                existing["count"] = existing.get("count", 1) + 1
                existing["lastTimestamp"] = self.store.clock.rfc3339()
                return self.store.replace("events", existing)
        now = self.store.clock.rfc3339()
        event = {
            "metadata": {"name": f"{ref['name']}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": ref,
            "reason": reason, "message": message, "type": type_,
            "source": source,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "eventTime": None,
            "reportingComponent": component, "reportingInstance": host or "",
        }
        return self.store.create("events", event)

    def new(self, obj: dict[str, Any], type_: str, reason: str, message: str, *,
            component: str, action: str, instance: str = "") -> dict[str, Any]:
        """events.k8s.io/v1 recorder seen through core/v1: eventTime, null first/lastTimestamp."""
        ref = involved(obj)
        ns = ref["namespace"] or "default"
        event = {
            "metadata": {"name": f"{ref['name']}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": ref,
            "reason": reason, "message": message, "type": type_,
            "source": {},
            "firstTimestamp": None, "lastTimestamp": None,
            "eventTime": self.store.clock.micro(),
            "action": action,
            "reportingComponent": component, "reportingInstance": instance or component,
        }
        return self.store.create("events", event)
