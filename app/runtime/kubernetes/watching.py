"""The list-then-watch loop that keeps one resource kind (Jobs, Pods, Events) in view.

It lists, hands the whole listing to `apply("LIST", {"items": [...]})`, then watches
from the list's resourceVersion and hands on every ADDED, MODIFIED and DELETED object.
A watch that expired (410) lists again at once; any other fault lists again after a
backoff. Either way `apply` sees the fresh state as a whole, so no transition is missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from app.runtime.kubernetes.calls import REQUEST_TIMEOUT

log = structlog.get_logger(__name__)
MAX_BACKOFF = 2.0
# A watch is idle at most this long before the client reconnects (servers send bookmarks
# about once a minute, so a healthy idle watch never hits it; a half-open one does).
WATCH_TIMEOUT = (10, 300)

# A `list_namespaced_*` method of the API client: Watch.stream() calls it with watch=True.
ListCall = Callable[..., Awaitable[Any]]
# Receives ("LIST", {"items": [...]}) or (watch event type, the object), as plain dicts.
Apply = Callable[[str, dict], None]


async def list_then_watch(
    kind: str,
    list_call: ListCall,
    apply: Apply,
    *,
    api: ApiClient,
    namespace: str,
    label_selector: str | None,
    pool_id: str,
) -> None:
    """List, then watch from the list's resourceVersion; on 410 or a broken stream,
    list again (apply() sees the fresh state as a whole, so nothing is missed).
    Runs until cancelled."""
    backoff = 0.2
    kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
    while True:
        watch = Watch()
        try:
            listing = await list_call(namespace, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            if isinstance(listing, dict):  # custom objects come as plain dicts
                items, version = listing["items"], listing["metadata"]["resourceVersion"]
            else:
                items = [api.sanitize_for_serialization(i) for i in listing.items]
                version = listing.metadata.resource_version
            apply("LIST", {"items": items})
            backoff = 0.2
            async for event in watch.stream(
                list_call, namespace, resource_version=version,
                allow_watch_bookmarks=True, _request_timeout=WATCH_TIMEOUT, **kwargs,
            ):
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    apply(event["type"], event["raw_object"])
        except asyncio.CancelledError:
            raise
        except ApiException as error:
            if error.status == 410:
                log.info("k8s.watch_expired", pool=pool_id, kind=kind)
                continue  # too old: list again at once
            log.warning("k8s.watch_failed", pool=pool_id, kind=kind,
                        status=error.status, reason=error.reason)
        except Exception as error:  # noqa: BLE001 - any fault: list again; reads go on from the DB
            log.warning("k8s.watch_broken", pool=pool_id, kind=kind,
                        error=f"{error.__class__.__name__}: {error}")
        finally:
            await watch.close()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
