"""The proxy kinds' command lines (cluster.proxy_argv), from the one table in proxykinds.py; no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from rap.localcluster import cluster, proxykinds, state
from rap.localcluster.config import ClusterConfig

BINARY = Path("/opt/kube-proxy-x")


def _argv(kind: str) -> list[str]:
    st = state.ClusterState(kubeconfig="/run/k.kubeconfig", cluster_ip="10.215.0.7")
    return cluster.proxy_argv(ClusterConfig(proxy=kind), st, 2, BINARY, Path("/run/rt"))


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


@pytest.mark.parametrize("kind", ["rap", "stock"])
def test_userspace_kinds_run_kube_proxy_in_userspace_mode_without_gates(kind):
    argv = _argv(kind)
    flags = _flags(argv)
    assert argv[0] == str(BINARY)
    assert flags["proxy-mode"] == "userspace"
    assert "feature-gates" not in flags
    assert flags["hostname-override"] == "node-2" and flags["bind-address"] == "10.213.0.12"


@pytest.mark.parametrize("kind", ["iptables", "local-only"])
def test_iptables_kinds_run_the_same_kube_proxy_with_the_traffic_policy_gate(kind):
    flags = _flags(_argv(kind))
    assert flags["proxy-mode"] == "iptables"
    assert flags["feature-gates"] == "ServiceInternalTrafficPolicy=true"
    # Clients in node namespaces are outside the pod range: their requests are masqueraded.
    assert flags["cluster-cidr"] == "10.214.0.0/16"
    # Node namespaces share the host's conntrack sysctls: kube-proxy must not set them.
    assert flags["conntrack-max-per-core"] == "0"


def test_local_only_differs_from_iptables_only_in_the_service_policy():
    assert _argv("local-only") == _argv("iptables")
    assert proxykinds.kind("local-only").traffic_policy == "Local"
    assert {k.name for k in proxykinds.KINDS.values() if k.traffic_policy != "Cluster"} == {"local-only"}


def test_the_iptables_kinds_clean_up_with_the_stock_build():
    assert proxykinds.kind("iptables").build == proxykinds.kind("local-only").build == "stock"
    assert proxykinds.BINARIES["stock"] == "kube-proxy-stock"


def test_python_and_haproxy_kinds_are_python_modules():
    assert _argv("python")[1:3] == ["-m", "rap.pyproxy"]
    haproxy = _argv("haproxy")
    assert haproxy[1:3] == ["-m", "rap.localcluster.haproxy"]
    assert haproxy[haproxy.index("--balance") + 1] == "random(2)"
    assert haproxy[haproxy.index("--cluster-ip") + 1] == "10.215.0.7"
    assert haproxy[haproxy.index("--cgroup") + 1] == "rap-local/node-2"  # haproxy is charged to its node
    leastconn = _argv("haproxy-leastconn")
    assert leastconn[leastconn.index("--balance") + 1] == "leastconn"
