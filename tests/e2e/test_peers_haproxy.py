"""The HAProxy peers on the local cluster: haproxy-leastconn, then haproxy (random(2)), then away to stock.

One 3-node cluster (2 pods a node, no added delay) serves the module, and the
tests run in file order on it: it starts with haproxy-leastconn; the pod
tests change its Endpoints; the switch tests move it to ``haproxy`` and then
to ``stock``, killing one agent with SIGKILL on the way to check that neither
its haproxy nor its rule outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from rap.localcluster import cluster, config, procs, state, traffic
from rap.localcluster.haproxy import redirect
from rap.localcluster.haproxy.config import BACKEND
from rap.localcluster.haproxy.runtime import AdminSocket

from tests.e2e.clusters import running

pytestmark = pytest.mark.e2e

NODES = (1, 2, 3)


@pytest.fixture(scope="module")
def peer_cluster():
    c = config.ClusterConfig(nodes=3, proxy="haproxy-leastconn", default_pods=2, pod_cpu=0.25, cpu_ms=2)
    with running(c, rap=False) as (runtime, st):
        yield runtime, st


def _load(st, i: int, **kw):
    kw = {"concurrency": 6, "duration": 8, "max_requests": 90, **kw}
    return traffic.load(config.node_netns(i), st.cluster_ip, 80, **kw)


def _failures(samples):
    return [s.error or f"HTTP {s.status}" for s in samples if s.status != 200]


def _serving(runtime: Path, i: int) -> set[str]:
    """The addresses node i's HAProxy sends new connections to, from its runtime API."""
    admin = AdminSocket(runtime / f"haproxy-{i}" / "admin.sock")
    return {addr for addr, _, up in admin.servers(BACKEND).values() if up}


def _pod_ips(runtime: Path) -> set[str]:
    return {p["ip"] for p in state.load(runtime).pods}


def _wait_for(predicate, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _haproxy_pids(runtime: Path) -> list[int]:
    """Every haproxy carrying this cluster's mark (the agents' children)."""
    return [pid for pid in procs.marked(runtime) if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy"]


def _child_haproxy(agent_pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(agent_pid), "-x", "haproxy"], capture_output=True, text=True).stdout
    [pid] = out.split()
    return int(pid)


def _balance(runtime: Path, i: int) -> str:
    text = (runtime / f"haproxy-{i}" / "haproxy.cfg").read_text()
    return next(line.split()[1] for line in text.splitlines() if line.strip().startswith("balance "))


def _spread_check(st, runtime):
    for i in NODES:
        samples = _load(st, i)
        assert len(samples) == 90 and not _failures(samples), (i, _failures(samples)[:5])
        by_node = Counter(s.node for s in samples)
        assert set(by_node) == {"node-1", "node-2", "node-3"}, (i, by_node)
        assert len({s.pod for s in samples}) >= 5, (i, Counter(s.pod for s in samples))


def test_leastconn_answers_on_every_node_and_spreads_over_every_node(peer_cluster):
    runtime, st = peer_cluster
    assert all(_balance(runtime, i) == "leastconn" for i in NODES)
    _spread_check(st, runtime)


def test_each_haproxy_runs_in_its_nodes_namespace_and_cgroup_and_serves_every_endpoint(peer_cluster):
    runtime, _ = peer_cluster
    for i in NODES:
        agent = procs.recorded(runtime)[f"proxy-{i}"]
        child = _child_haproxy(agent)
        assert os.readlink(f"/proc/{child}/ns/net") == os.readlink(f"/proc/{agent}/ns/net")
        assert Path(f"/proc/{child}/cgroup").read_text() == Path(f"/proc/{agent}/cgroup").read_text()
        assert _serving(runtime, i) == _pod_ips(runtime)
        assert redirect.installed(config.node_netns(i))


def test_an_added_pod_is_served_within_two_seconds_on_every_node(peer_cluster):
    runtime, st = peer_cluster
    pod = cluster.add_pod(2)
    took = _wait_for(lambda: all(pod["ip"] in _serving(runtime, i) for i in NODES), 5, f"{pod['name']} in HAProxy")
    assert took < 2.0, took
    samples = _load(st, 1, max_requests=120)
    assert not _failures(samples) and pod["name"] in {s.pod for s in samples}


def test_a_removed_pod_leaves_every_haproxy_within_two_seconds_without_failed_requests(peer_cluster):
    runtime, st = peer_cluster
    pod = [p for p in state.load(runtime).pods if p["node"] == "node-2"][-1]
    cluster.remove_pod(pod["name"])
    took = _wait_for(lambda: all(pod["ip"] not in _serving(runtime, i) for i in NODES), 5,
                     f"{pod['name']} out of HAProxy")
    assert took < 2.0, took
    samples = _load(st, 3, max_requests=60)
    assert not _failures(samples) and pod["name"] not in {s.pod for s in samples}
    assert all(_serving(runtime, i) == _pod_ips(runtime) for i in NODES)


def test_switching_to_random2_answers_on_every_node_and_spreads(peer_cluster):
    runtime, _ = peer_cluster
    st = cluster.switch_proxy("haproxy")
    assert all(_balance(runtime, i) == "random(2)" for i in NODES)
    _spread_check(st, runtime)


def test_switching_to_stock_leaves_no_rule_and_no_haproxy_even_after_a_sigkill(peer_cluster):
    runtime, _ = peer_cluster
    agent = procs.recorded(runtime)["proxy-1"]
    child = _child_haproxy(agent)
    os.kill(agent, signal.SIGKILL)
    _wait_for(lambda: not procs.alive(child), 5, "node-1's haproxy to die with its agent")
    assert redirect.installed(config.node_netns(1))  # only cleanup removes a SIGKILLed agent's rule
    st = cluster.switch_proxy("stock")
    for i in NODES:
        assert redirect.installed(config.node_netns(i)) == [], i
    assert _haproxy_pids(runtime) == []
    samples = _load(st, 1, max_requests=30)
    assert not _failures(samples)
