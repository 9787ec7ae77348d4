"""Cluster credentials that expire, kept valid.

Out of a cluster, a kubeconfig user is often an exec plugin (`aws eks get-token`,
`gke-gcloud-auth-plugin`) or the gcp auth provider, whose tokens live 15 minutes to an
hour. kubernetes_asyncio (36.1, config/kube_config.py) runs the plugin once, in
`load_kube_config`; its own `refresh_token(loader, ...)` loop only helps a caller that
runs and supervises it. client-go (plugin/pkg/client/auth/exec/exec.go) does two things,
and so does jobgraph:

- before each request, a token whose plugin told its `expirationTimestamp` is renewed
  when it is about to expire (`KubeConfigLoader.load_from_exec_plugin` / `load_gcp_token`
  decide, five minutes early), through `Configuration.refresh_api_key_hook`, which the
  client awaits before every request (the in-cluster loader sets its own hook, which
  re-reads the projected service account token);
- a request answered 401 reloads the kubeconfig (running the plugin again) and is sent
  once more, once per rejected token: a 401 means the request was not processed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient, Configuration, rest
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

log = structlog.get_logger(__name__)

# What a reload copies into the configuration in use (ApiClients read it per request).
CREDENTIAL_FIELDS = ("cert_file", "key_file")


def bearer(configuration: Configuration) -> str | None:
    return configuration.api_key.get("BearerToken")


class Credentials:
    """The credentials of one pool's configuration; `renew` reloads them."""

    def __init__(
        self,
        configuration: Configuration,
        *,
        reload: Callable[[], Awaitable[Configuration]] | None,
        pool_id: str,
    ) -> None:
        self.configuration = configuration
        self._reload = reload
        self._pool_id = pool_id
        self._lock = asyncio.Lock()
        self.loader: KubeConfigLoader | None = None  # renewing before expiry

    def renew_before_expiry(self, loader: KubeConfigLoader) -> None:
        """Renew expiring tokens before requests (see the module's docstring)."""
        if self.configuration.refresh_api_key_hook is not None:
            return  # the library's own (in-cluster)
        user = getattr(loader, "_user", None)
        if loader.provider != "gcp" and not (user is not None and "exec" in user):
            return  # a static token or a certificate: nothing expires by itself

        async def hook(configuration: Configuration) -> None:
            # Only an exec token whose expiry is known: without one, the library would
            # run the plugin before every request (client-go keeps it until a 401).
            if loader.provider != "gcp" and not hasattr(loader, "exec_plugin_expiry"):
                return
            async with self._lock:
                before = getattr(loader, "token", None)
                if loader.provider == "gcp":
                    await loader.load_gcp_token()
                else:
                    await loader.load_from_exec_plugin()
                token = getattr(loader, "token", None)
                # Only a token the loader renewed now: after a 401 the configuration holds
                # a newer one than this loader's.
                if token and token != before:
                    configuration.api_key["BearerToken"] = token
                    log.info("k8s.credentials_renewed", pool=self._pool_id, why="expiring")

        self.configuration.refresh_api_key_hook = hook
        self.loader = loader

    async def renew(self, *, rejected: str | None) -> bool:
        """After a 401 for the token `rejected`: reload the credentials; True when the
        request is worth sending again (they changed, here or in a concurrent renew)."""
        if self._reload is None:
            return False
        async with self._lock:
            if bearer(self.configuration) != rejected:
                return True  # renewed meanwhile
            try:
                fresh = await self._reload()
            except Exception as error:  # noqa: BLE001 - the 401 stands; say why in the log
                log.warning("k8s.credentials_reload_failed", pool=self._pool_id,
                            error=f"{error.__class__.__name__}: {error}")
                return False
            changed = bearer(fresh) != rejected or any(
                getattr(fresh, f) != getattr(self.configuration, f) for f in CREDENTIAL_FIELDS
            )
            if "BearerToken" in fresh.api_key:
                self.configuration.api_key["BearerToken"] = fresh.api_key["BearerToken"]
            for name in CREDENTIAL_FIELDS:
                setattr(self.configuration, name, getattr(fresh, name))
            log.info("k8s.credentials_renewed", pool=self._pool_id, why="401", changed=changed)
            return changed


class RenewingApiClient(ApiClient):
    """An ApiClient that sends a request answered 401 once more after `renew`.

    Every generated API method and `Watch.stream` go through `call_api`; with
    `_preload_content=False` (watches, logs) a 401 comes back as a response, not raised.
    """

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(configuration=credentials.configuration)
        self._credentials = credentials

    @classmethod
    async def unbounded(cls, credentials: Credentials) -> RenewingApiClient:
        """A client without the library's cap of 100 connections, for log follows: one
        long-lived request per running pod must not starve the other calls of theirs."""
        client = cls(credentials)
        await client.rest_client.close()  # made by ApiClient.__init__, never used
        client.rest_client = rest.RESTClientObject(credentials.configuration, maxsize=0)
        return client

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        token = bearer(self.configuration)
        try:
            result = await super().call_api(*args, **kwargs)
        except ApiException as error:
            if error.status != 401 or not await self._credentials.renew(rejected=token):
                raise
            return await super().call_api(*args, **kwargs)
        if (
            not kwargs.get("_preload_content", True)
            and getattr(result, "status", None) == 401
            and await self._credentials.renew(rejected=token)
        ):
            result.release()
            return await super().call_api(*args, **kwargs)
        return result
