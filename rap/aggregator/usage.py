"""Pods, nodes and metrics.k8s.io lists -> one record per node: what the aggregator publishes.

The fractions are rap.go's per-node monitor's (rap_patch/rap_monitor.go:
``podUsageByIP``, ``containersCapacity``, ``nodeUsageByName``), through the
same helpers as the Python proxy's monitor (rap.pyproxy.monitor), so the two
monitors and rap.go cannot drift apart:

- a pod's use is the sum of its containers' use over the sum of their limits
  (a container without a limit counts its request); a resource that some
  container has neither for is unknown and counts 0; a pod with both unknown,
  a host-network pod and a pod without an IP get no entry; a pod is published
  under every IP it has;
- a node's use is its usage over its allocatable; a node without CPU or memory
  allocatable, or without a sample, gets no ``cpu``/``mem``.

Pure: plain API JSON in, records out. The capacities are worked out once per
object (``pod_info``, ``node_info``) when the watch delivers it, so a round
only parses the metrics. Not here: reading the API (``kube``), deciding what
to write (``publish``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

# The shared maths (rap.go's, restated once in Python); see the module's docstring.
from rap.pyproxy.monitor import _pod_capacity, _pod_ips, _quantity, parse_timestamp

DIGITS = 2  # fractions are published rounded to 0.01 (docs/scale.md)


@dataclass(frozen=True)
class PodInfo:
    """What a round needs of one running pod: its node, IPs, and the capacity its use is a fraction of."""

    node: str
    ips: tuple[str, ...]
    cpu: float  # cores; 0 when unknown
    mem: float  # bytes; 0 when unknown


@dataclass(frozen=True)
class NodeInfo:
    """What a round needs of one node: its InternalIP ("" when none) and its allocatable."""

    name: str
    ip: str
    cpu: float  # cores; 0 when unknown
    mem: float  # bytes; 0 when unknown


@dataclass(frozen=True)
class Load:
    """CPU and memory use as fractions, rounded to ``DIGITS``."""

    cpu: float
    mem: float


@dataclass(frozen=True)
class NodeRecord:
    """One node's published record: ``node`` is None when metrics have no sample for it."""

    name: str
    ip: str
    node: Load | None = None
    pods: Mapping[str, Load] = field(default_factory=dict)  # by pod IP


@dataclass(frozen=True)
class Round:
    """A round's records by node name, and the newest metrics timestamp it read (None: no item had one)."""

    records: dict[str, NodeRecord]
    newest: datetime | None


def pod_key(pod: Mapping[str, Any]) -> str:
    """``namespace/name``: how metrics.k8s.io names a pod's metrics item."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_info(pod: Mapping[str, Any]) -> PodInfo | None:
    """A Pod's ``PodInfo``; None for a pod no record can hold: not Running, host network (it shares
    its node's IP), without an IP, or not bound to a node."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ips = _pod_ips(pod)
    if status.get("phase") != "Running" or spec.get("hostNetwork") or not ips or not spec.get("nodeName"):
        return None
    return PodInfo(spec["nodeName"], tuple(ips), _pod_capacity(pod, "cpu"), _pod_capacity(pod, "memory"))


def node_info(node: Mapping[str, Any]) -> NodeInfo:
    """A Node's ``NodeInfo``."""
    status = node.get("status") or {}
    ip = next((a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
    alloc = status.get("allocatable")
    return NodeInfo((node.get("metadata") or {}).get("name", ""), ip or "",
                    _quantity(alloc, "cpu"), _quantity(alloc, "memory"))


def fraction(used: float, capacity: float) -> float:
    """``used`` over ``capacity``, rounded; 0 when the capacity is unknown."""
    return round(used / capacity, DIGITS) if capacity > 0 else 0.0


def records(nodes: Mapping[str, NodeInfo], pods: Mapping[str, PodInfo],
            pod_metrics: Mapping[str, Any], node_metrics: Mapping[str, Any]) -> Round:
    """Every node of ``nodes`` as a record, with its sampled pods of ``pods`` (by ``pod_key``)."""
    newest: list[float] = []

    def stamp(item: Mapping[str, Any]) -> None:
        ts = parse_timestamp(item.get("timestamp"))
        if ts is not None:
            newest.append(ts)

    by_node: dict[str, dict[str, Load]] = {name: {} for name in nodes}
    for item in pod_metrics.get("items") or []:
        stamp(item)
        info = pods.get(pod_key(item))
        if info is None or info.node not in by_node or (info.cpu <= 0 and info.mem <= 0):
            continue
        containers = item.get("containers") or []
        used_cpu = sum(_quantity(c.get("usage"), "cpu") for c in containers)
        used_mem = sum(_quantity(c.get("usage"), "memory") for c in containers)
        load = Load(fraction(used_cpu, info.cpu), fraction(used_mem, info.mem))
        for ip in info.ips:
            by_node[info.node][ip] = load
    node_load: dict[str, Load] = {}
    for item in node_metrics.get("items") or []:
        stamp(item)
        info = nodes.get((item.get("metadata") or {}).get("name"))
        if info is None or info.cpu <= 0 or info.mem <= 0:
            continue
        usage = item.get("usage")
        node_load[info.name] = Load(fraction(_quantity(usage, "cpu"), info.cpu),
                                    fraction(_quantity(usage, "memory"), info.mem))
    out = {name: NodeRecord(name, info.ip, node_load.get(name), by_node[name]) for name, info in nodes.items()}
    return Round(out, datetime.fromtimestamp(max(newest), timezone.utc) if newest else None)
