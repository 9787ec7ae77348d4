"""A fake Kubernetes API server for tests — a TEST DOUBLE, never shipped with jobgraph.

It serves batch/v1 Jobs and core/v1 Pods, Events, pod logs and pod exec over a real socket, so
the production runtime can be tested through the unmodified ``kubernetes_asyncio`` client, and
simulates the Job controller, scheduler, kubelet and (optionally) Kueue admission.
See tests/k8sfake/README.md and shared/reference/kubernetes-fake.md.
"""

from .controllers import Delays
from .fake import FakeKubernetes
from .server import RecordedRequest

__all__ = ["Delays", "FakeKubernetes", "RecordedRequest"]
