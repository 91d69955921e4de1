"""Options and clear errors of the local cluster, without creating anything."""

import socket

import pytest

from rap.localcluster import cluster, config, controlplane, options, state
from rap.localcluster.config import ClusterConfig, ClusterConfigError


def test_addresses_come_from_the_documented_ranges():
    assert config.node_ip(1) == "10.213.0.11"
    assert config.pod_ip(2, 3) == "10.214.2.13"
    assert config.pod_cidr(3) == "10.214.3.0/24"
    assert config.bridge_ip() == "10.213.0.1"


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "--nodes: must be 1..9"),
    ({"proxy": "ipvs"}, "--proxy: must be one of rap, rap-adaptive, stock, iptables, local-only, python, haproxy, haproxy-leastconn"),
    ({"python_policy": "random"}, "--policy: must be rap, round-robin or least-request"),
    ({"pods": {4: 1}}, "--pods: node-4 does not exist in a 3-node cluster"),
    ({"default_pods": 0}, "--pods: the cluster would have no backend pods at all"),
    ({"pod_cpu": 0}, "--pod-cpu: must be in (0, 64] cores"),
    ({"cpu_ms": -1}, "--cpu-ms: must be >= 0"),
    ({"rtt_ms": {(1, 5): 10.0}}, "--rtt: node-1:node-5 is not a pair of distinct nodes"),
])
def test_bad_options_name_the_option(kwargs, message):
    with pytest.raises(ClusterConfigError) as err:
        ClusterConfig(**kwargs)
    assert message in str(err.value)


def test_parse_pods():
    assert config.parse_pods("node-1=3,node-3=0") == ({1: 3, 3: 0}, None)
    assert config.parse_pods("4") == ({}, 4)
    with pytest.raises(ClusterConfigError, match="--pods: 'node-1:3' is not NODE=COUNT"):
        config.parse_pods("node-1:3")


def test_number_option_error():
    with pytest.raises(ClusterConfigError, match="--pod-cpu: 'half' is not a number"):
        options.parse_options(pod_cpu="half")


def test_port_in_use_is_named_with_the_fix():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(controlplane.ControlPlaneError) as err:
            controlplane.check_port_free("127.0.0.1", port, "etcd")
    assert f"port 127.0.0.1:{port} for etcd is in use" in str(err.value)
    assert "invoke local-down" in str(err.value)


def test_not_root_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 1000)
    with pytest.raises(cluster.LocalClusterError, match="local-up needs root"):
        cluster.preflight(ClusterConfig())
    with pytest.raises(cluster.LocalClusterError, match="local-down needs root"):
        cluster.down()


def test_missing_binary_names_build_proxy(monkeypatch, tmp_path):
    if cluster.os.geteuid() != 0:
        pytest.skip("preflight checks root first")
    monkeypatch.setenv("RAP_BUILD_OUT", str(tmp_path))
    with pytest.raises(cluster.LocalClusterError) as err:
        cluster.preflight(ClusterConfig(proxy="stock"))
    assert "is not built yet: run `invoke build-proxy --apiserver`" in str(err.value)


def test_state_round_trip(tmp_path):
    st = state.ClusterState(phase="up", proxy="rap", nodes=["node-1"], pod_serial={"1": 3})
    state.save(tmp_path, st)
    assert state.load(tmp_path) == st
    assert state.load(tmp_path / "absent") is None
