"""The local cluster's shape and addresses: one home, validated.

Addresses come from ranges the project owns on this machine (documented in
docs/localcluster.md) and never leave the namespaces it creates:

- 10.213.0.0/24  node network: bridge ``rap0`` = .1 (API server), node i = .(10+i)
- 10.214.i.0/24  pods of node i: the node's pod bridge = .1, pod k = .(10+k)
- 10.215.0.0/24  Service ClusterIPs
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from rap.config import FIELDS, ConfigError
from rap.errors import UserError
from rap.localcluster import proxykinds
from rap.options import one_of
from rap.policies import POLICY_NAMES

PROXY_KINDS = proxykinds.NAMES
MAX_NODES = 9
MAX_PODS_PER_NODE = 40

NODE_NET = ipaddress.ip_network("10.213.0.0/24")
POD_NET = ipaddress.ip_network("10.214.0.0/16")
SERVICE_NET = ipaddress.ip_network("10.215.0.0/24")
BRIDGE = "rap0"
NS_PREFIX = "rap-"


class ClusterConfigError(UserError, ValueError):
    """A bad local-cluster option; the message names the option and the fix."""


def node_name(i: int) -> str:
    return f"node-{i}"


def node_index(name: str) -> int:
    m = re.fullmatch(r"node-([1-9])", name)
    if not m:
        raise ClusterConfigError(f"{name!r} is not a node of the local cluster (node-1 .. node-{MAX_NODES})")
    return int(m.group(1))


def node_ip(i: int) -> str:
    return str(NODE_NET.network_address + 10 + i)


def bridge_ip() -> str:
    return str(NODE_NET.network_address + 1)


def pod_cidr(i: int) -> str:
    return f"10.214.{i}.0/24"


def pod_gateway(i: int) -> str:
    return f"10.214.{i}.1"


def pod_ip(i: int, k: int) -> str:
    return f"10.214.{i}.{10 + k}"


def node_netns(i: int) -> str:
    return f"{NS_PREFIX}node-{i}"


def pod_netns(i: int, k: int) -> str:
    return f"{NS_PREFIX}pod-{i}-{k}"


@dataclass(frozen=True)
class ClusterConfig:
    nodes: int = 3
    proxy: str = "rap"
    python_policy: str = "rap"  # with proxy "python": one of rap.policies.POLICY_NAMES
    # With proxy "python" and policy rap: RAP's mode (the config table's "mode"); None: the table's
    # default (adaptive). "classic" decides as the kube-proxy kind "rap" does.
    python_mode: str | None = None
    # pods per node, by node index; nodes not named get `default_pods`.
    pods: dict[int, int] = field(default_factory=dict)
    default_pods: int = 2
    pod_cpu: float = 0.25  # CPU limit of each backend pod, in cores
    pod_mem_mib: int = 256
    node_cpu: float = 1.0  # a node's allocatable CPU, in cores
    node_mem_mib: int = 2048
    cpu_ms: float = 2.0  # CPU time each request costs a backend
    rtt_ms: dict[tuple[int, int], float] = field(default_factory=dict)
    api_port: int = 6443
    etcd_port: int = 23790
    metrics_port: int = 6444
    rap_period_s: float = 1.0
    # RAP's monitor (the config table's "monitor"): "aggregator" also runs rap.aggregator.
    rap_monitor: str = FIELDS["monitor"].default
    # The metrics server's sampling interval and CPU-rate window, in seconds. Short by
    # default so that tests react fast; metrics-server's release manifest scrapes every
    # 15 s and reports the rate between its last two scrapes (the bench's production cadence).
    metrics_interval_s: float = 0.5
    metrics_window_s: float = 2.0
    # More kube-apiserver flags (the scale measurement's audit log); none for local-up.
    apiserver_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ClusterConfigError(f"--nodes: must be 1..{MAX_NODES}, got {self.nodes}")
        if self.proxy not in PROXY_KINDS:
            raise ClusterConfigError(f"--proxy: must be one of {', '.join(PROXY_KINDS)}, got {self.proxy!r}")
        if self.python_policy not in POLICY_NAMES:
            default_first = ["rap", *(n for n in POLICY_NAMES if n != "rap")]
            raise ClusterConfigError(f"--policy: must be {one_of(default_first)}, got {self.python_policy!r}")
        for i, n in self.pods.items():
            if not 1 <= i <= self.nodes:
                raise ClusterConfigError(f"--pods: node-{i} does not exist in a {self.nodes}-node cluster")
            if not 0 <= n <= MAX_PODS_PER_NODE:
                raise ClusterConfigError(f"--pods: node-{i} wants {n} pods; allowed 0..{MAX_PODS_PER_NODE}")
        if not 0 <= self.default_pods <= MAX_PODS_PER_NODE:
            raise ClusterConfigError(f"--pods: default {self.default_pods} outside 0..{MAX_PODS_PER_NODE}")
        if sum(self.pods_on(i) for i in self.node_indexes()) == 0:
            raise ClusterConfigError("--pods: the cluster would have no backend pods at all")
        for name, value in (("--pod-cpu", self.pod_cpu), ("--node-cpu", self.node_cpu)):
            if not 0 < value <= 64:
                raise ClusterConfigError(f"{name}: must be in (0, 64] cores, got {value}")
        if self.cpu_ms < 0:
            raise ClusterConfigError(f"--cpu-ms: must be >= 0, got {self.cpu_ms}")
        try:  # the monitor's period is RAP's period_s, with RAP's own bounds
            FIELDS["period_s"].check(self.rap_period_s)
        except ConfigError as exc:
            raise ClusterConfigError(f"--period: {exc.reason}") from None
        try:
            if self.python_mode is not None:  # a test's or the bench's value: no option of local-up sets it
                FIELDS["mode"].check(self.python_mode)
        except ConfigError as exc:
            raise ClusterConfigError(f"python_mode: {exc.reason}") from None
        try:
            FIELDS["monitor"].check(self.rap_monitor)
        except ConfigError as exc:
            raise ClusterConfigError(f"--monitor: {exc.reason}") from None
        if not 0 < self.metrics_interval_s <= self.metrics_window_s <= 600:
            raise ClusterConfigError(f"metrics cadence: need 0 < interval ({self.metrics_interval_s:g}s) <= window "
                                     f"({self.metrics_window_s:g}s) <= 600s")
        for (a, b), ms in self.rtt_ms.items():
            if a == b or not (1 <= a <= self.nodes and 1 <= b <= self.nodes):
                raise ClusterConfigError(f"--rtt: node-{a}:node-{b} is not a pair of distinct nodes of this cluster")
            if not 0 <= ms <= 10_000:
                raise ClusterConfigError(f"--rtt: node-{a}:node-{b}={ms}ms outside 0..10000 ms")

    def node_indexes(self) -> range:
        return range(1, self.nodes + 1)

    def pods_on(self, i: int) -> int:
        return self.pods.get(i, self.default_pods)

    def rtt(self, a: int, b: int) -> float:
        return self.rtt_ms.get((min(a, b), max(a, b)), 0.0)


def parse_pods(spec: str | None) -> tuple[dict[int, int], int | None]:
    """``"node-1=3,node-2=1"`` or ``"2"`` (every node) -> ({1: 3, 2: 1}, default)."""
    if not spec:
        return {}, None
    if re.fullmatch(r"\d+", spec.strip()):
        return {}, int(spec)
    out: dict[int, int] = {}
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(node-\d)\s*=\s*(\d+)\s*", part)
        if not m:
            raise ClusterConfigError(f"--pods: {part!r} is not NODE=COUNT (e.g. node-1=3,node-2=1) or one COUNT")
        out[node_index(m.group(1))] = int(m.group(2))
    return out, None

