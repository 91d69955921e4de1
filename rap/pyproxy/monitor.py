"""RAP's monitor: metrics.k8s.io usage, core-API limits and allocatable, RTTs -> a ``Snapshot``.

The same reading as rap.go's monitor (rap_patch/rap_monitor.go): a pod's use is a
fraction of the sum of its containers' limits (a container without a limit
counts its request); a node's use is a fraction of its allocatable; the RTT to
a node is the TCP connect time to its InternalIP on the RTT port (a refused
connection still took one round trip). Samples are merged per item: what one
fetch did not return keeps its old sample, which the policy ignores once it is
older than ``stale_after_s`` and the monitor then drops. A sample's ``at`` is
the metric's own timestamp (see ``Stamps``). The pure functions here take API
JSON so they are tested without a cluster.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable, Mapping

from rap.quantity import QuantityError, parse_quantity
from rap.snapshot import Rtt, Snapshot, Usage

log = logging.getLogger("rap.pyproxy")

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"
API_TIMEOUT_S = 10


def _quantity(resources: Mapping[str, Any] | None, name: str) -> float:
    """A resource from a ResourceList, 0 when absent or unreadable (unknown is never overloaded)."""
    try:
        value = parse_quantity((resources or {}).get(name, 0))
    except QuantityError:
        return 0.0
    # A negative or non-finite reading would make an endpoint look emptier than idle: unknown, as in rap.go.
    return value if math.isfinite(value) and value >= 0 else 0.0


def _pod_capacity(pod: Mapping[str, Any], name: str) -> float:
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        value = _quantity(res.get("limits"), name) or _quantity(res.get("requests"), name)
        if value <= 0:
            return 0.0  # one unbounded container makes the pod's fraction meaningless
        total += value
    return total


def _pod_ips(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    ips = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


# stamp(key, timestamp) -> at: a metric item's key and its ``timestamp`` field, onto the balancer's clock.
Stamp = Callable[[str, Any], float]


def pod_usage_by_ip(pods: Mapping[str, Any], metrics: Mapping[str, Any], stamp: Stamp) -> dict[str, Usage]:
    """PodList + PodMetricsList -> usage by pod IP. Host-network pods share their node's IP: skipped."""
    capacity = {}
    for pod in pods.get("items") or []:
        meta = pod.get("metadata") or {}
        if (pod.get("spec") or {}).get("hostNetwork") or not _pod_ips(pod):
            continue
        key = (meta.get("namespace", ""), meta.get("name", ""))
        capacity[key] = (_pod_ips(pod), _pod_capacity(pod, "cpu"), _pod_capacity(pod, "memory"))
    out: dict[str, Usage] = {}
    for item in metrics.get("items") or []:
        meta = item.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        ips, cpu_cap, mem_cap = capacity.get(key, ([], 0, 0))
        if cpu_cap <= 0 and mem_cap <= 0:
            continue
        used_cpu = sum(_quantity(c.get("usage"), "cpu") for c in item.get("containers") or [])
        used_mem = sum(_quantity(c.get("usage"), "memory") for c in item.get("containers") or [])
        usage = Usage(used_cpu / cpu_cap if cpu_cap > 0 else 0.0, used_mem / mem_cap if mem_cap > 0 else 0.0,
                      stamp("/".join(key), item.get("timestamp")))
        for ip in ips:
            out[ip] = usage
    return out


def node_usage_by_name(nodes: Mapping[str, Any], metrics: Mapping[str, Any], stamp: Stamp) -> dict[str, Usage]:
    """NodeList + NodeMetricsList -> usage as fractions of allocatable, by node name."""
    alloc = {(n.get("metadata") or {}).get("name"): (n.get("status") or {}).get("allocatable")
             for n in nodes.get("items") or []}
    out: dict[str, Usage] = {}
    for item in metrics.get("items") or []:
        name = (item.get("metadata") or {}).get("name")
        cpu_cap, mem_cap = _quantity(alloc.get(name), "cpu"), _quantity(alloc.get(name), "memory")
        if name not in alloc or cpu_cap <= 0 or mem_cap <= 0:
            continue
        usage = item.get("usage")
        out[name] = Usage(_quantity(usage, "cpu") / cpu_cap, _quantity(usage, "memory") / mem_cap,
                          stamp(name, item.get("timestamp")))
    return out


def node_addresses(nodes: Mapping[str, Any], local: str) -> dict[str, str]:
    """InternalIP of every node but the local one."""
    out = {}
    for n in nodes.get("items") or []:
        name = (n.get("metadata") or {}).get("name")
        for a in (n.get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP" and name != local:
                out[name] = a.get("address")
                break
    return out


def probe_rtt_ms(ip: str, port: int, timeout_s: float) -> float | None:
    """TCP connect time in ms; None when the node does not answer within the timeout."""
    start = time.perf_counter()
    try:
        socket.create_connection((ip, port), timeout=timeout_s).close()
    except ConnectionRefusedError:
        pass  # the RST came back: one round trip, measured all the same
    except OSError:
        return None
    return (time.perf_counter() - start) * 1000.0


def parse_timestamp(value: Any) -> float | None:
    """An RFC 3339 timestamp -> seconds since the epoch; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


class Stamps:
    """Where each metric item's timestamp landed on the balancer's clock.

    A sample's ``at`` is the metric's own timestamp, not the fetch's: staleness
    must measure the data's age. metrics-server reports use over
    [timestamp - window, timestamp] and serves the same measurement until its
    next scrape, so a reading stamped when fetched would look fresh however old
    it is (and a stuck metrics-server would never go stale).
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}  # key -> (timestamp, at)

    def at(self, key: str, timestamp: Any, now: float, wall: float) -> float:
        """``now - (wall - timestamp)``; the same timestamp again is the same measurement and
        keeps its ``at``; one ahead of ``wall`` (clock skew) is now; one missing is the fetch's."""
        ts = parse_timestamp(timestamp)
        if ts is None:
            return now
        prev = self._seen.get(key)
        if prev is not None and prev[0] == ts:
            return prev[1]
        at = min(now, now - (wall - ts))
        self._seen[key] = (ts, at)
        return at

    def prune(self, now: float, stale_after_s: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if now - v[1] <= stale_after_s}

    def __contains__(self, key: str) -> bool:
        return key in self._seen


def merge(old: Mapping[str, Any], fetched: Mapping[str, Any], now: float, stale_after_s: float) -> dict[str, Any]:
    """The fetched samples over the old ones, without those older than ``stale_after_s``."""
    return {k: v for k, v in {**old, **fetched}.items() if now - v.at <= stale_after_s}


class Monitor:
    """One ``refresh`` per period; ``fetch`` reads the API (replaced by a stub in tests)."""

    def __init__(self, api_client, policy, local_node: str, period_s: float, rtt_port: int,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.api_client = api_client
        self.policy = policy
        self.local_node = local_node
        self.rtt_port = rtt_port
        self.clock = clock
        self.wall = wall  # the clock metrics.k8s.io's timestamps are on
        self.stale_after_s = policy.config.stale_after_s  # the policy's own horizon
        self.timeout_s = min(period_s, 2.0)
        self.snapshot = Snapshot()
        self.pod_stamps, self.node_stamps = Stamps(), Stamps()
        self._metrics_ok: bool | None = None

    def refresh(self) -> Snapshot:
        """Merge per item: what this round did not return (a pod metrics-server skipped,
        a source that failed) keeps its old sample until stale."""
        old = self.snapshot
        errors: list[BaseException] = []
        pods = self._attempt(self._pod_usage, errors)
        node_list = self._attempt(self._get_nodes, errors)
        nodes = self._attempt(lambda: self._node_usage(node_list), errors) if node_list is not None else {}
        rtt = self._rtts(node_list) if node_list is not None else {}
        self._note_metrics(errors[0] if errors else None)
        now = self.clock()
        self.pod_stamps.prune(now, self.stale_after_s)
        self.node_stamps.prune(now, self.stale_after_s)
        merged = Snapshot(pods=merge(old.pods, pods or {}, now, self.stale_after_s),
                          nodes=merge(old.nodes, nodes or {}, now, self.stale_after_s),
                          rtt=merge(old.rtt, rtt, now, self.stale_after_s))
        # one reference swap; what the policy holds is the snapshot with its hot flags set
        self.snapshot = self.policy.update_snapshot(merged)
        return self.snapshot

    @staticmethod
    def _attempt(fetch: Callable[[], Any], errors: list[BaseException]) -> Any:
        """``fetch()``, or None with the error noted: any API failure means "keep serving, go stale"."""
        try:
            return fetch()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            return None

    def _stamp(self, stamps: Stamps) -> Stamp:
        now, wall = self.clock(), self.wall()  # once the metrics have arrived
        return lambda key, timestamp: stamps.at(key, timestamp, now, wall)

    def _pod_usage(self) -> dict[str, Usage]:
        pod_list = self._core_json("list_pod_for_all_namespaces", field_selector="status.phase=Running")
        pod_metrics = self._metrics("pods")
        return pod_usage_by_ip(pod_list, pod_metrics, self._stamp(self.pod_stamps))

    def _node_usage(self, node_list: Mapping[str, Any]) -> dict[str, Usage]:
        return node_usage_by_name(node_list, self._metrics("nodes"), self._stamp(self.node_stamps))

    def _rtts(self, node_list: Mapping[str, Any]) -> dict[str, Rtt]:
        """The nodes that answered; ``refresh``'s merge keeps a silent node's old sample until stale."""
        addrs = node_addresses(node_list, self.local_node)
        if not addrs:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(addrs))) as pool:
            results = dict(zip(addrs, pool.map(
                lambda ip: probe_rtt_ms(ip, self.rtt_port, self.timeout_s), addrs.values())))
        at = self.clock()
        return {name: Rtt(ms, at) for name, ms in results.items() if ms is not None}

    def _get_nodes(self) -> Mapping[str, Any]:
        return self._core_json("list_node")

    def _core_json(self, method: str, **kwargs) -> Mapping[str, Any]:
        return core_json(self.api_client, method, **kwargs)

    def _metrics(self, plural: str) -> Mapping[str, Any]:
        from kubernetes import client

        # GET /apis/metrics.k8s.io/v1beta1/<plural> through the API server's aggregation layer.
        return client.CustomObjectsApi(self.api_client).list_cluster_custom_object(
            METRICS_GROUP, METRICS_VERSION, plural, _request_timeout=API_TIMEOUT_S)

    def _note_metrics(self, err: BaseException | None) -> None:
        ok = err is None
        if ok == self._metrics_ok:
            return
        self._metrics_ok = ok
        if ok:
            log.info("RAP: resource metrics available; balancing adaptively")
        else:
            log.error("RAP: cannot read resource metrics (%s); balancing as round robin once samples "
                      "are older than stale_after_s", _short(err))


def core_json(api_client, method: str, **kwargs) -> Mapping[str, Any]:
    """A core/v1 list as plain JSON (the typed models are not needed, and tests feed JSON)."""
    import json

    from kubernetes import client

    resp = getattr(client.CoreV1Api(api_client), method)(
        _preload_content=False, _request_timeout=API_TIMEOUT_S, **kwargs)
    return json.loads(resp.data)


def _short(err: BaseException) -> str:
    """One line: an API error's status and reason, or the exception's first line."""
    if getattr(err, "status", None) and getattr(err, "reason", None):
        return f"HTTP {err.status} {err.reason}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
