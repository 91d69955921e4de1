"""`invoke local-up`'s options: their help and their parser, defaults from ClusterConfig.

The task hands the raw option text here and gets a validated ClusterConfig
back; nothing about the cluster's shape is restated in tasks.py.
"""

from __future__ import annotations

from rap.localcluster import proxykinds
from rap.localcluster.config import ClusterConfig, ClusterConfigError, parse_pods
from rap.options import number, with_defaults
from rap.policies import POLICY_NAMES


def option_help() -> dict[str, str]:
    d = ClusterConfig()
    defaults = {"nodes": d.nodes, "proxy": d.proxy, "policy": d.python_policy, "pods": f"{d.default_pods} each",
                "pod_cpu": d.pod_cpu, "cpu_ms": d.cpu_ms, "period": d.rap_period_s,
                "monitor": d.rap_monitor}
    return with_defaults({
        "nodes": "number of nodes, 1..9",
        "proxy": "; ".join(f"{k.name}: {k.help}" for k in proxykinds.KINDS.values()),
        "policy": f"with --proxy python: {', '.join(POLICY_NAMES)}",
        "pods": "backend pods per node: one COUNT for every node, or node-1=3,node-2=1",
        "pod_cpu": "CPU limit of each backend pod, in cores",
        "cpu_ms": "CPU milliseconds each request costs a backend",
        "rtt": "inter-node round-trip time, repeatable: node-2=40ms (node-1<->node-2), node-1:node-3=80ms, *=10ms",
        "period": "RAP's monitor period in seconds; shorter than a real cluster's so that tests react fast",
        "monitor": "RAP's monitor: node (each kube-proxy lists the cluster) or aggregator (also runs "
                   "rap.aggregator, which the kube-proxies watch; docs/scale.md)",
    }, defaults)


def parse_options(*, nodes=None, proxy=None, policy=None, pods=None, pod_cpu=None, cpu_ms=None,
                  rtt=None, period=None, monitor=None) -> ClusterConfig:
    """Raw option text -> ClusterConfig; a bad option is a ClusterConfigError naming it."""
    from rap.localcluster import netdelay

    d = ClusterConfig()
    per_node, every = parse_pods(pods)
    node_count = number("--nodes", nodes, int, ClusterConfigError, d.nodes)
    return ClusterConfig(
        nodes=node_count, proxy=proxy or d.proxy, python_policy=policy or d.python_policy,
        pods=per_node, default_pods=d.default_pods if every is None else every,
        pod_cpu=number("--pod-cpu", pod_cpu, float, ClusterConfigError, d.pod_cpu),
        cpu_ms=number("--cpu-ms", cpu_ms, float, ClusterConfigError, d.cpu_ms),
        rtt_ms=netdelay.parse_rtt(rtt or [], nodes=node_count),
        rap_period_s=number("--period", period, float, ClusterConfigError, d.rap_period_s),
        rap_monitor=monitor or d.rap_monitor)
