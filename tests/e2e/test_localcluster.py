"""The local cluster end to end: real etcd, kube-apiserver, kube-proxy with RAP, real sockets.

Needs root and the built binaries (the fixture builds them through the cached
pipeline). One 3-node cluster serves every test of the module: node-1 is
where clients are; node-2 is 10 ms away, node-3 30 ms.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

import pytest

from rap.localcluster import cluster, config, netns, procs, state, traffic, workload

from tests.e2e.clusters import running, wait_for

pytestmark = pytest.mark.e2e

NODE1 = config.node_netns(1)


@pytest.fixture(scope="module")
def rap_cluster():
    c = config.ClusterConfig(nodes=3, proxy="rap", default_pods=2, pod_cpu=0.25, cpu_ms=2,
                             rtt_ms={(1, 2): 10.0, (1, 3): 30.0, (2, 3): 20.0}, rap_period_s=1.0)
    with running(c) as (runtime, st):
        yield runtime, st


def _load(st, **kw):
    return traffic.load(NODE1, st.cluster_ip, 80, **kw)


def _nodes(samples):
    return Counter(s.node for s in samples if s.status == 200)


def test_every_request_is_answered_through_the_proxy(rap_cluster):
    _, st = rap_cluster
    samples = _load(st, concurrency=4, duration=5, max_requests=80)
    assert len(samples) == 80
    assert all(s.status == 200 for s in samples), [s.error for s in samples if s.status != 200][:5]


def test_a_second_local_up_is_a_clear_error_and_harms_nothing(rap_cluster):
    runtime, st = rap_cluster
    with pytest.raises(cluster.LocalClusterError, match="a local cluster already exists"):
        cluster.up(config.ClusterConfig(nodes=2), runtime)
    assert state.load(runtime).phase == "up"
    assert all(s.status == 200 for s in _load(st, concurrency=2, duration=2, max_requests=10))


def test_requests_stay_local_while_node1_has_capacity(rap_cluster):
    _, st = rap_cluster
    # Once RAP's monitor has fresh metrics (a period or two), every connection stays on node-1.
    wait_for(lambda: set(_nodes(_load(st, concurrency=2, duration=3, max_requests=20))) == {"node-1"},
              30, "RAP to keep connections on node-1")
    samples = _load(st, concurrency=2, duration=5, max_requests=60)
    assert _nodes(samples) == Counter({"node-1": 60})


def test_requests_move_away_when_local_pods_are_overloaded(rap_cluster):
    runtime, st = rap_cluster
    local = [p for p in st.pods if p["node"] == "node-1"]
    for p in local:
        workload.set_cost(p["ip"], 60)
    stressor = _stress(local)
    try:
        wait_for(lambda: _share_off_node1(st) >= 0.8, 40, "connections to leave node-1")
        samples = _load(st, concurrency=2, duration=4, max_requests=40)
        nodes = _nodes(samples)
        # node-2 is nearer (10 ms vs 30 ms) with equal resources: it scores best.
        assert nodes["node-2"] >= 0.8 * sum(nodes.values()), nodes
    finally:
        stressor.terminate()
        stressor.wait(timeout=10)
        for p in local:
            workload.set_cost(p["ip"], 2)


def _share_off_node1(st) -> float:
    nodes = _nodes(_load(st, concurrency=2, duration=2, max_requests=20))
    total = sum(nodes.values())
    return (total - nodes["node-1"]) / total if total else 0.0


def _stress(pods):
    """Saturate node-1's pods directly (not through the proxy), bounded to 90 s."""
    urls = " ".join(f"http://{p['ip']}:8080/" for p in pods)
    script = (
        "import sys, rap.loadgen as g, threading\n"
        "ts=[threading.Thread(target=g.run, args=(u,'closed'), kwargs=dict(concurrency=3, duration=90,"
        " max_requests=100000, timeout=30)) for u in sys.argv[1:]]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
    )
    return subprocess.Popen(["ip", "netns", "exec", NODE1, "python3", "-c", script, *urls.split()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_endpoint_churn_under_load_loses_only_in_flight_requests(rap_cluster):
    runtime, st = rap_cluster
    concurrency = 4
    gen = subprocess.Popen(
        ["ip", "netns", "exec", NODE1, "python3", "-m", "rap.loadgen", "--url", f"http://{st.cluster_ip}:80/",
         "--mode", "closed", "--concurrency", str(concurrency), "--duration", "12", "--max-requests", "5000"],
        stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    victim = next(p for p in cluster.current(runtime).pods if p["node"] == "node-1")
    cluster.remove_pod(victim["name"], runtime)
    added = cluster.add_pod(1, runtime)
    out, _ = gen.communicate(timeout=60)
    import json

    samples = [json.loads(line) for line in out.splitlines()]
    failed = [s for s in samples if s["status"] != 200]
    assert len(samples) > 50
    # At most the connections that were in flight to the removed pod may fail.
    assert len(failed) <= concurrency, failed[:5]
    served_after = {s["pod"] for s in samples[-20:] if s["status"] == 200}
    assert victim["name"] not in served_after
    assert any(s["pod"] == added["name"] for s in samples), "the added pod never served"


def test_metrics_source_stopped_falls_back_to_round_robin(rap_cluster):
    runtime, st = rap_cluster
    wait_for(lambda: set(_nodes(_load(st, concurrency=2, duration=3, max_requests=20))) == {"node-1"},
              30, "RAP to be local first")
    pid = procs.recorded(runtime)["metrics-server"]
    os.kill(pid, 9)
    try:
        # stale_after is 3 periods (3 s); then RAP is blind and round-robins over all 6 pods.
        wait_for(lambda: len(_nodes(_load(st, concurrency=2, duration=3, max_requests=30))) == 3,
                 30, "round robin over every node")
        samples = _load(st, concurrency=3, duration=4, max_requests=60)
        assert all(s.status == 200 for s in samples)
        assert len(_nodes(samples)) == 3
    finally:
        _restart_metrics(runtime, st)


def _restart_metrics(runtime, st):
    cluster.restart_metrics(runtime)


@pytest.mark.parametrize("kind, policy", [("stock", "rap"), ("python", "least-request"), ("rap", "rap")])
def test_switching_the_proxy_keeps_the_service_answering(rap_cluster, kind, policy):
    runtime, _ = rap_cluster
    st = cluster.switch_proxy(kind, policy, runtime)
    samples = _load(st, concurrency=3, duration=4, max_requests=30)
    assert [s.status for s in samples] == [200] * 30
    if kind == "stock":  # round robin spreads over all three nodes
        assert len(_nodes(samples)) == 3


def _nat_rules(node: int) -> str:
    return subprocess.run(["ip", "netns", "exec", config.node_netns(node), "iptables-save", "-t", "nat"],
                          capture_output=True, text=True, check=True).stdout


def test_switching_away_from_kube_proxy_removes_its_rules_on_every_node(rap_cluster):
    runtime, _ = rap_cluster
    nodes = range(1, 4)
    cluster.switch_proxy("stock", "rap", runtime)
    try:
        assert all("KUBE-PORTALS" in _nat_rules(i) for i in nodes)  # there is something to remove
        cluster.switch_proxy("python", "least-request", runtime)
        assert [i for i in nodes if "KUBE-PORTALS" in _nat_rules(i)] == []
    finally:
        cluster.switch_proxy("rap", "rap", runtime)


def test_inter_node_rtt_is_what_was_asked(rap_cluster):
    """TCP connect time from node-1 to each node's RTT listener, the probe RAP itself uses."""
    script = (
        "import socket, statistics, sys, time\n"
        "def connect(ip):\n"
        "    t = time.perf_counter(); s = socket.create_connection((ip, 10250), 5); s.close()\n"
        "    return (time.perf_counter() - t) * 1000\n"
        "for ip in sys.argv[1:]:\n"
        "    print(statistics.median(connect(ip) for _ in range(9)))\n"
    )
    ips = [config.node_ip(2), config.node_ip(3)]
    out = subprocess.run(["ip", "netns", "exec", NODE1, "python3", "-c", script, *ips],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    to_node2, to_node3 = map(float, out.split())
    assert 9.0 <= to_node2 <= 10 + 15, to_node2
    assert 27.0 <= to_node3 <= 30 + 15, to_node3


def test_a_killed_delayer_drops_delayed_traffic_and_the_bench_refuses(rap_cluster):
    """Fail closed: node-1 to node-3 (30 ms) stops answering instead of going fast, and the
    benchmark's check refuses to measure. Leaves node-3 without its delayer: runs just before local-down."""
    from rap.bench.scenarios import SCENARIOS
    from rap.bench.target import LocalTarget, TargetError
    from rap.localcluster import netdelay
    from rap.localcluster.netdelay import check

    runtime, _ = rap_cluster
    measured = cluster.check_delay(runtime)
    assert set(measured) == {(1, 2), (1, 3), (2, 3)} and measured[(1, 3)] >= 0.7 * 30
    [pid] = netdelay.find_delayers(config.node_netns(3))
    os.kill(pid, 9)
    wait_for(lambda: not procs.alive(pid), 10, "the delayer to die")
    with pytest.raises(netdelay.NetDelayError, match="failed"):
        check.connect_ms(NODE1, config.node_ip(3), cluster.RTT_PORT, timeout=1.0)
    assert check.connect_ms(NODE1, config.node_ip(2), cluster.RTT_PORT) >= 0.7 * 10  # the others still delayed
    with pytest.raises(cluster.LocalClusterError, match="no netdelay process runs in rap-node-3"):
        cluster.check_delay(runtime)
    target = LocalTarget()
    with pytest.raises(TargetError, match="the inter-node delay is not active"):
        target.check_delay(SCENARIOS["geo"])


def _root_view() -> dict[str, str]:
    def out(*cmd):
        return subprocess.run(list(cmd), capture_output=True, text=True, check=True).stdout

    return {"links": out("ip", "-o", "link"), "routes": out("ip", "route", "show"),
            "netns": out("ip", "netns", "list")}


def _node_rules(i: int) -> str:
    return subprocess.run(["ip", "netns", "exec", config.node_netns(i), "iptables-save"],
                          capture_output=True, text=True, check=True).stdout


def test_local_down_leaves_nothing(rap_cluster):
    runtime, st = rap_cluster
    before = _root_view()
    # What local-down must remove is there: so its absence afterwards means something.
    assert " rap0:" in before["links"] and "rapn1" in before["links"], before["links"]
    assert [r for r in before["routes"].splitlines() if r.startswith("10.214.1.0/24")], before["routes"]
    for i in (1, 2, 3):
        assert config.node_netns(i) in before["netns"]
        rules = _node_rules(i)
        assert "-j RAP-NETDELAY" in rules and "KUBE-PORTALS" in rules, (i, rules[:400])  # delay, proxy
    assert procs.marked(runtime)
    cluster.down(runtime)
    after = _root_view()
    assert netns.existing_namespaces() == [] and "rap-" not in after["netns"]
    assert " rap0" not in after["links"] and "rapn" not in after["links"]
    assert [r for r in after["routes"].splitlines() if r.startswith("10.214.") or "rap0" in r] == []
    assert procs.marked(runtime) == []
    from rap.localcluster import cgroups

    assert not cgroups.group(workload.CGROUP_PARENT).exists()
    assert not runtime.exists()


def test_a_failed_up_leaves_nothing_even_when_keeping_its_logs_fails(rap_cluster, monkeypatch):
    """After the shared cluster is gone: a start that fails after the network, etcd and the API
    server are up, with the log copy failing too, still removes every part."""
    from rap.localcluster import steps

    runtime, _ = rap_cluster
    assert not runtime.exists()

    def fails(ctx):
        from rap.localcluster import cgroups, netdelay

        # something of every kind to roll back
        assert procs.marked(ctx.runtime) and netns.existing_namespaces()
        assert netdelay.find_delayers(config.node_netns(1)) and cgroups.group(workload.CGROUP_PARENT).exists()
        raise RuntimeError("injected failure after the control plane")

    def no_copy(runtime):
        raise OSError("injected: the log copy failed")

    # certificates, network, control plane, nodes (cgroups, node agents, delayers): then the failure
    monkeypatch.setattr(steps, "ACTIONS", steps.ACTIONS[:4] + (steps.Action(lambda ctx: "fail", fails),))
    monkeypatch.setattr(cluster, "_keep_logs", no_copy)
    with pytest.raises(cluster.LocalClusterError, match="rolled back: injected failure"):
        cluster.up(config.ClusterConfig(nodes=2, proxy="rap", rtt_ms={(1, 2): 10.0}), runtime)
    view = _root_view()
    assert netns.existing_namespaces() == [] and " rap0" not in view["links"] and "rapn" not in view["links"]
    assert [r for r in view["routes"].splitlines() if r.startswith("10.214.")] == []
    assert procs.marked(runtime) == []
    from rap.localcluster import cgroups

    assert not cgroups.group(workload.CGROUP_PARENT).exists()
    assert not runtime.exists()
