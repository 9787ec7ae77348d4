"""Where a pool's cluster is: its kubeconfig (and context), or the in-cluster service
account; and the namespace that configuration names."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

from app.runtime.kubernetes.options import KubernetesPoolOptions, PoolOptionsError

INCLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


async def load_configuration(
    options: KubernetesPoolOptions, *, pool_id: str
) -> tuple[Configuration, str | None, KubeConfigLoader | None]:
    """The pool's kubeconfig (and context); without one: in-cluster, then ~/.kube/config.

    Also the namespace to use when the pool names none (the service account's, or the
    kubeconfig context's, else "default"); None when the pool names one. And the
    kubeconfig's loader (None in a cluster), which can renew expiring credentials.
    Called again to reload the credentials (`credentials.Credentials.renew`)."""
    configuration = Configuration()
    namespace: str | None = None
    try:
        if options.kubeconfig:
            loader = await kube_config.load_kube_config(
                config_file=str(options.kubeconfig),
                context=options.context,
                client_configuration=configuration,
            )
        else:
            try:
                kube_config.load_incluster_config(client_configuration=configuration)
                loader = None
                in_pod = await asyncio.to_thread(INCLUSTER_NAMESPACE.is_file)
                if options.namespace is None and in_pod:
                    in_cluster = await asyncio.to_thread(INCLUSTER_NAMESPACE.read_text)
                    namespace = in_cluster.strip() or "default"
            except kube_config.ConfigException:
                loader = await kube_config.load_kube_config(
                    context=options.context, client_configuration=configuration
                )
    except (kube_config.ConfigException, OSError, ValueError) as error:
        raise PoolOptionsError(
            f"pool {pool_id!r}: cannot load the cluster configuration: {error}"
        ) from error
    if loader is not None and options.namespace is None:
        try:
            current = loader.current_context
            context_namespace = current["context"].safe_get("namespace") if current else None
        except (AttributeError, KeyError, TypeError):
            context_namespace = None
        namespace = context_namespace or "default"
    return configuration, namespace, loader
