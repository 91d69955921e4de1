"""RAP's monitor: metrics.k8s.io usage, core-API limits and allocatable, RTTs -> a ``Snapshot``.

The same reading as rap.go's monitor (rap_patch/rap_monitor.go): a pod's use is a
fraction of the sum of its containers' limits (a container without a limit
counts its request); a node's use is a fraction of its allocatable; the RTT to
a node is the TCP connect time to its InternalIP on the RTT port (a refused
connection still took one round trip). What cannot be measured keeps its old
sample, which the policy ignores once it is older than ``stale_after_s``.
The pure functions here take API JSON so they are tested without a cluster.
"""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

from rap.quantity import QuantityError, parse_quantity
from rap.snapshot import Rtt, Snapshot, Usage

log = logging.getLogger("rap.pyproxy")

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"
API_TIMEOUT_S = 10


def _quantity(resources: Mapping[str, Any] | None, name: str) -> float:
    """A resource from a ResourceList, 0 when absent or unreadable (unknown is never overloaded)."""
    try:
        return parse_quantity((resources or {}).get(name, 0))
    except QuantityError:
        return 0.0


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


def pod_usage_by_ip(pods: Mapping[str, Any], metrics: Mapping[str, Any], at: float) -> dict[str, Usage]:
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
        ips, cpu_cap, mem_cap = capacity.get((meta.get("namespace", ""), meta.get("name", "")), ([], 0, 0))
        if cpu_cap <= 0 and mem_cap <= 0:
            continue
        used_cpu = sum(_quantity(c.get("usage"), "cpu") for c in item.get("containers") or [])
        used_mem = sum(_quantity(c.get("usage"), "memory") for c in item.get("containers") or [])
        usage = Usage(used_cpu / cpu_cap if cpu_cap > 0 else 0.0, used_mem / mem_cap if mem_cap > 0 else 0.0, at)
        for ip in ips:
            out[ip] = usage
    return out


def node_usage_by_name(nodes: Mapping[str, Any], metrics: Mapping[str, Any], at: float) -> dict[str, Usage]:
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
        out[name] = Usage(_quantity(usage, "cpu") / cpu_cap, _quantity(usage, "memory") / mem_cap, at)
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


class Monitor:
    """One ``refresh`` per period; ``fetch`` reads the API (replaced by a stub in tests)."""

    def __init__(self, api_client, policy, local_node: str, period_s: float, rtt_port: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api_client = api_client
        self.policy = policy
        self.local_node = local_node
        self.rtt_port = rtt_port
        self.clock = clock
        self.timeout_s = min(period_s, 2.0)
        self.snapshot = Snapshot()
        self._metrics_ok: bool | None = None

    def refresh(self) -> Snapshot:
        old = self.snapshot
        pods, nodes, rtt = old.pods, old.nodes, old.rtt
        try:
            node_list = self._get_nodes()
        except Exception as e:  # noqa: BLE001 - any API failure means "keep serving, go stale"
            self._note_metrics(e)
        else:
            try:
                pods, nodes = self._usage(node_list)
                self._note_metrics(None)
            except Exception as e:  # noqa: BLE001
                self._note_metrics(e)
            rtt = self._rtts(node_list, old.rtt)
        self.snapshot = Snapshot(pods=pods, nodes=nodes, rtt=rtt)
        self.policy.update_snapshot(self.snapshot)  # one reference swap
        return self.snapshot

    def _usage(self, node_list: Mapping[str, Any]) -> tuple[dict, dict]:
        pod_list = self._core_json("list_pod_for_all_namespaces", field_selector="status.phase=Running")
        pod_metrics = self._metrics("pods")
        node_metrics = self._metrics("nodes")
        at = self.clock()
        return pod_usage_by_ip(pod_list, pod_metrics, at), node_usage_by_name(node_list, node_metrics, at)

    def _rtts(self, node_list: Mapping[str, Any], old: Mapping[str, Rtt]) -> dict[str, Rtt]:
        addrs = node_addresses(node_list, self.local_node)
        if not addrs:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(addrs))) as pool:
            results = dict(zip(addrs, pool.map(
                lambda ip: probe_rtt_ms(ip, self.rtt_port, self.timeout_s), addrs.values())))
        at = self.clock()
        out = {}
        for name, ms in results.items():
            if ms is not None:
                out[name] = Rtt(ms, at)
            elif name in old:
                out[name] = old[name]  # keeps its age, goes stale by itself
        return out

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
