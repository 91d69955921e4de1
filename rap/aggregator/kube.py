"""The aggregator's API: Nodes and Pods kept by list+watch, metrics read per round, its objects written.

- ``Reflector``: one resource kept in memory by one list and then a watch
  (with bookmarks), resumed from the last resourceVersion when the server
  ends it; a 410 Gone relists at once, any other failure relists after an
  exponential backoff. What a round costs the API server is then its two
  metrics reads and its writes, not a list of the whole cluster.
- ``Kube``: the two reflectors, the metrics.k8s.io reads, the ConfigMaps
  (create, replace, delete, and one list at start-up to learn what is already
  published) and the heartbeat Lease.

Everything is read as plain JSON (``_preload_content=False``): the typed
models would cost more than the round at 1,000 nodes. Not here: what the
objects hold (``publish``), the fractions (``usage``), the period (``loop``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import urllib3
from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from rap.aggregator import publish, usage
from rap.aggregator.usage import NodeRecord

log = logging.getLogger("rap.aggregator")

TIMEOUT_S = 10.0  # one API request (rap.go's monitor uses the same)
METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"


class NotSynced(RuntimeError):
    """A reflector has not listed its resource yet, or its watch is broken and not relisted."""


# What a failing API server, network or metrics source raises (anything else is a bug).
API_ERRORS = (client.ApiException, urllib3.exceptions.HTTPError, OSError, json.JSONDecodeError, NotSynced)


def describe(err: BaseException) -> str:
    """One line for a log: an API error's status and reason, else the exception's first line."""
    status, reason = getattr(err, "status", None), getattr(err, "reason", None)
    if status and reason:
        try:  # the API server's Status says what was wrong ("metadata.resourceVersion: ...")
            message = str(json.loads(err.body or "")["message"]).splitlines()[0][:200]
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            message = ""
        return f"HTTP {status} {reason}" + (f": {message}" if message else "")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _json(resp) -> Any:
    try:
        return json.loads(resp.data)
    finally:
        resp.release_conn()


class Reflector:
    """One resource (``list_call``, a CoreV1Api list method) kept as ``{key: convert(object)}``.

    ``convert`` may return None for an object the store does not hold. ``run`` (a thread) lists,
    then watches; ``sync`` is the list alone (``--once``).
    """

    def __init__(self, what: str, list_call: Callable[..., Any], key: Callable[[Mapping], str],
                 convert: Callable[[Mapping], Any], field_selector: str | None = None,
                 backoff: tuple[float, float] = (0.5, 30.0), watch_s: float = 300.0) -> None:
        self.what, self.list_call, self.key, self.convert = what, list_call, key, convert
        self.field_selector = field_selector
        self.backoff_s, self.max_backoff_s = backoff
        self.watch_s = watch_s
        self.lists = 0  # how many lists it made (tests and logs)
        self._lock = threading.Lock()
        self._items: dict[str, Any] = {}
        self._rv = ""
        self._healthy = False  # listed, and the watch since has not failed

    def _args(self) -> dict:
        return {"field_selector": self.field_selector} if self.field_selector else {}

    def items(self) -> dict[str, Any]:
        """A copy of the store; NotSynced unless listed and watching."""
        with self._lock:
            if not self._healthy:
                raise NotSynced(f"{self.what}: not listed yet, or the watch failed and the relist is pending")
            return dict(self._items)

    def sync(self) -> None:
        """List the resource and replace the store with it."""
        # resourceVersion "0": served from the API server's watch cache, as client-go's reflector lists.
        doc = _json(self.list_call(resource_version="0", _preload_content=False,
                                   _request_timeout=TIMEOUT_S, **self._args()))
        items = {}
        for obj in doc.get("items") or []:
            value = self.convert(obj)
            if value is not None:
                items[self.key(obj)] = value
        with self._lock:
            self._items, self._rv, self._healthy = items, (doc.get("metadata") or {}).get("resourceVersion", ""), True
            self.lists += 1

    def _apply(self, event: Mapping) -> bool:
        """One watch event into the store; False when the resourceVersion is gone (410: relist at once).
        Another ERROR event raises (relist after the backoff)."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                return False
            raise RuntimeError(f"watch error {obj.get('code')} {obj.get('reason', '')}: {obj.get('message', '')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                value = self.convert(obj)
                if value is None:
                    self._items.pop(self.key(obj), None)
                else:
                    self._items[self.key(obj)] = value
            elif kind == "DELETED":
                self._items.pop(self.key(obj), None)
            if rv:
                self._rv = rv
        return True

    def watch_once(self, stop: threading.Event) -> bool:
        """One watch from the last resourceVersion until the server ends it; False: relist."""
        timeout = int(self.watch_s * (1 + random.random()))  # spread, as client-go spreads its watches
        resp = self.list_call(watch=True, resource_version=self._rv, allow_watch_bookmarks=True,
                              timeout_seconds=timeout, _preload_content=False,
                              _request_timeout=(TIMEOUT_S, timeout + 30), **self._args())
        try:
            for line in iter_resp_lines(resp):
                if stop.is_set():
                    return True
                if line and not self._apply(json.loads(line)):
                    return False
        finally:
            resp.close()  # not back to the pool: a watch left mid-stream has unread data
            resp.release_conn()
        return True

    def run(self, stop: threading.Event) -> None:
        """List, then watch, until ``stop``; never raises."""
        delay, listed = self.backoff_s, False
        while not stop.is_set():
            try:
                if not listed:
                    self.sync()
                    listed, delay = True, self.backoff_s
                listed = self.watch_once(stop)
            except Exception as exc:  # noqa: BLE001 - any failure: back off, relist
                with self._lock:
                    self._healthy = False
                listed = False
                log.debug("%s: list/watch failed (%s); relisting in %.1fs", self.what, describe(exc), delay)
                if stop.wait(delay * (0.5 + random.random() / 2)):
                    return
                delay = min(delay * 2, self.max_backoff_s)
                continue
            if not listed:
                with self._lock:
                    self._healthy = False


def holder_identity() -> str:
    """Who renews the Lease: the pod's name (the Deployment sets POD_NAME), else the host's."""
    return os.environ.get("POD_NAME") or socket.gethostname()


class Kube:
    """The aggregator's API calls, over one ``ApiClient``."""

    def __init__(self, api: client.ApiClient, namespace: str, holder: str | None = None) -> None:
        self.api, self.namespace = api, namespace
        self.holder = holder or holder_identity()
        core = client.CoreV1Api(api)
        self.core, self.custom, self.coordination = core, client.CustomObjectsApi(api), client.CoordinationV1Api(api)
        self.nodes = Reflector("nodes", core.list_node, lambda o: (o.get("metadata") or {}).get("name", ""),
                               usage.node_info)
        self.pods = Reflector("pods", core.list_pod_for_all_namespaces, usage.pod_key, usage.pod_info,
                              field_selector="status.phase=Running")
        self._acquired: str | None = None
        self._lease_rv: str | None = None  # the Lease's resourceVersion after this aggregator's last write
        self._threads: list[threading.Thread] = []

    # --- Nodes and Pods

    def start(self, stop: threading.Event) -> None:
        """The two reflectors, each in its own thread until ``stop``."""
        for r in (self.nodes, self.pods):
            t = threading.Thread(target=r.run, args=(stop,), name=f"rap-aggregator-{r.what}", daemon=True)
            t.start()
            self._threads.append(t)

    def sync(self) -> None:
        """One list of each (``--once``: no watch)."""
        self.nodes.sync()
        self.pods.sync()

    def cluster(self) -> tuple[dict[str, usage.NodeInfo], dict[str, usage.PodInfo]]:
        """The nodes by name and the running pods by ``namespace/name``; NotSynced before both listed."""
        return self.nodes.items(), self.pods.items()

    # --- metrics.k8s.io

    def metrics(self, plural: str) -> dict:
        """GET /apis/metrics.k8s.io/v1beta1/<plural> (``pods`` or ``nodes``), all namespaces."""
        return _json(self.custom.list_cluster_custom_object(METRICS_GROUP, METRICS_VERSION, plural,
                                                            _preload_content=False, _request_timeout=TIMEOUT_S))

    # --- the ConfigMaps

    def published(self) -> dict[str, NodeRecord | None]:
        """What is already published, by node name (None: a ConfigMap this aggregator cannot read)."""
        doc = _json(self.core.list_namespaced_config_map(self.namespace, label_selector=publish.LABEL_SELECTOR,
                                                         _preload_content=False, _request_timeout=TIMEOUT_S))
        out: dict[str, NodeRecord | None] = {}
        for cm in doc.get("items") or []:
            name = (cm.get("metadata") or {}).get("name", "")
            if not name.startswith(publish.PREFIX):
                continue
            node = name[len(publish.PREFIX):]
            record = publish.read(cm.get("data"))
            # A record without the labels this aggregator gives (one written before the bounded view) is
            # rewritten, or no bounded view would ever select it.
            labelled = ((cm.get("metadata") or {}).get("labels") or {}) == publish.labels(node)
            out[node] = record if record is not None and record.name == node and labelled else None
        return out

    def create(self, record: NodeRecord) -> None:
        """Create the record's ConfigMap; one that exists already (409) is replaced."""
        try:
            self.core.create_namespaced_config_map(self.namespace, publish.configmap(record, self.namespace),
                                                   _preload_content=False, _request_timeout=TIMEOUT_S).release_conn()
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.replace(record)

    def replace(self, record: NodeRecord) -> None:
        """Replace the record's ConfigMap; one that is gone (404) is created."""
        name = publish.configmap_name(record.name)
        try:
            self.core.replace_namespaced_config_map(name, self.namespace, publish.configmap(record, self.namespace),
                                                    _preload_content=False, _request_timeout=TIMEOUT_S).release_conn()
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            self.create(record)

    def delete(self, node: str) -> None:
        """Delete the node's ConfigMap; one already gone (404) is fine."""
        try:
            self.core.delete_namespaced_config_map(publish.configmap_name(node), self.namespace,
                                                   _preload_content=False, _request_timeout=TIMEOUT_S).release_conn()
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    # --- the Lease

    def renew(self, metrics_time: datetime, duration_s: int, now: datetime | None = None) -> None:
        """Renew the heartbeat Lease for metrics measured up to ``metrics_time``; created when missing.

        A Lease takes no update without its resourceVersion: the one of this aggregator's last write
        is kept, so a renewal is one request; with none known, or after a conflict (someone else wrote
        it), the Lease is read first (once more at most)."""
        now = now or datetime.now(timezone.utc)
        for attempt in (1, 2):
            if self._lease_rv is None:
                self._read_lease()
            body = publish.lease(self.namespace, self.holder, duration_s, metrics_time, now, self._acquired)
            try:
                if self._lease_rv is None:
                    done = self.coordination.create_namespaced_lease(
                        self.namespace, body, _preload_content=False, _request_timeout=TIMEOUT_S)
                else:
                    body["metadata"]["resourceVersion"] = self._lease_rv
                    done = self.coordination.replace_namespaced_lease(
                        publish.LEASE, self.namespace, body, _preload_content=False, _request_timeout=TIMEOUT_S)
            except client.ApiException as exc:
                if exc.status not in (404, 409):
                    raise
                self._lease_rv = None  # read it again
                if attempt == 2:
                    raise
                continue
            self._acquired = body["spec"]["acquireTime"]
            self._lease_rv = (_json(done).get("metadata") or {}).get("resourceVersion")
            return

    def _read_lease(self) -> None:
        """The Lease's resourceVersion (None: there is none), and its acquireTime if this holder holds it."""
        try:
            current = _json(self.coordination.read_namespaced_lease(
                publish.LEASE, self.namespace, _preload_content=False, _request_timeout=TIMEOUT_S))
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            return
        self._lease_rv = (current.get("metadata") or {}).get("resourceVersion")
        spec = current.get("spec") or {}
        self._acquired = spec.get("acquireTime") if spec.get("holderIdentity") == self.holder else None


def wait_synced(kube: Kube, timeout_s: float, stop: threading.Event | None = None) -> bool:
    """Until both reflectors have listed (True), or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        try:
            kube.cluster()
            return True
        except NotSynced:
            time.sleep(0.05)
    return False
