"""The Kubernetes runtime: batch/v1 Jobs through kubernetes-asyncio, queued by Kueue or Volcano."""

from app.runtime.kubernetes.runtime import KubernetesRuntime

__all__ = ["KubernetesRuntime"]
