"""RAP with rap.aggregator against RAP with its per-node monitor, on the real local cluster (issue 15).

One 3-node cluster shaped like test_localcluster's (node-1 has the clients; node-2 is 10 ms away,
node-3 30 ms), classic RAP (the kube-proxy built with rap.go). The same two scenarios run under
each monitor, switched in place (``switch_proxy(monitor=...)``, which starts or stops the
aggregator): light load, where every connection should stay on node-1, and node-1's pods
overloaded, where connections should leave node-1 for node-2, the nearer of two equal nodes.
The aggregated monitor must decide as the per-node one does; then, with the aggregator killed,
its Lease stops being renewed, RAP goes blind and spreads over every node as round robin, and a
restarted aggregator brings local preference back; the Python reference proxy, reading the same
objects, decides the same way. Run one cluster at a time:
``flock /tmp/rap-cluster.lock python3 -m pytest -m e2e tests/e2e/test_aggregated_rap.py -x``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from rap.aggregator import local as aggregator
from rap.localcluster import cluster, config, procs, workload

from tests.e2e.clusters import running, wait_for
from tests.e2e.test_localcluster import _load, _nodes, _share_off_node1, _stress

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LIGHT, HEAVY = 2, 60  # CPU ms per request: node-1's pods idle, then saturated


@pytest.fixture(scope="module")
def agg_cluster():
    c = config.ClusterConfig(nodes=3, proxy="rap", default_pods=2, pod_cpu=0.25, cpu_ms=LIGHT,
                             rtt_ms={(1, 2): 10.0, (1, 3): 30.0, (2, 3): 20.0}, rap_period_s=1.0)
    with running(c) as (runtime, st):
        yield runtime, st


def _local(st) -> bool:
    return set(_nodes(_load(st, concurrency=2, duration=3, max_requests=20))) == {"node-1"}


def scenario(st) -> dict:
    """Where requests from node-1 go under light load, then with node-1's pods overloaded."""
    wait_for(lambda: _local(st), 40, "RAP to keep connections on node-1")
    light = _nodes(_load(st, concurrency=2, duration=5, max_requests=60))
    pods = [p for p in st.pods if p["node"] == "node-1"]
    for p in pods:
        workload.set_cost(p["ip"], HEAVY)
    stressor = _stress(pods)
    started = time.monotonic()
    try:
        wait_for(lambda: _share_off_node1(st) >= 0.8, 40, "connections to leave node-1")
        moved_s = time.monotonic() - started
        heavy = _nodes(_load(st, concurrency=2, duration=4, max_requests=40))
    finally:
        stressor.terminate()
        stressor.wait(timeout=10)
        for p in pods:
            workload.set_cost(p["ip"], LIGHT)
    return {"light": light, "heavy": heavy, "moved_s": moved_s}


def _shares(nodes: Counter) -> dict[str, float]:
    total = sum(nodes.values())
    return {n: nodes[n] / total for n in ("node-1", "node-2", "node-3")}


def _proxy_log(runtime) -> str:
    return procs.log_path(runtime, "proxy-1").read_text(errors="replace")


def test_the_aggregated_monitor_balances_like_the_per_node_one(agg_cluster):
    runtime, st = agg_cluster
    assert aggregator.running(runtime) is None  # node monitor first: no aggregator
    per_node = scenario(st)
    st = cluster.switch_proxy("rap", "rap", runtime, monitor="aggregator")
    assert aggregator.running(runtime)
    aggregated = scenario(st)
    assert 'monitor="aggregator"' in _proxy_log(runtime)  # rap.go's "resource metrics available" line
    for name, got in (("per-node", per_node), ("aggregated", aggregated)):
        light, heavy = _shares(got["light"]), _shares(got["heavy"])
        assert light["node-1"] == 1.0, (name, got)
        assert heavy["node-2"] >= 0.8, (name, got)  # forwarded, and to the nearer node
    a, b = _shares(per_node["heavy"]), _shares(aggregated["heavy"])
    assert all(abs(a[n] - b[n]) <= 0.2 for n in a), (per_node, aggregated)
    print(f"\nper-node: {per_node}\naggregated: {aggregated}")


def test_rap_falls_back_to_round_robin_when_the_aggregator_is_gone_and_recovers(agg_cluster):
    runtime, st = agg_cluster
    if aggregator.running(runtime) is None:
        st = cluster.switch_proxy("rap", "rap", runtime, monitor="aggregator")
    wait_for(lambda: _local(st), 40, "aggregated RAP to keep connections on node-1")
    os.kill(aggregator.running(runtime), signal.SIGKILL)
    # Its Lease's metrics time is now frozen; after stale_after (3 periods) RAP is blind.
    wait_for(lambda: len(_nodes(_load(st, concurrency=2, duration=3, max_requests=30))) == 3, 30,
             "round robin over every node")
    samples = _load(st, concurrency=3, duration=4, max_requests=60)
    assert all(s.status == 200 for s in samples), [s.error for s in samples if s.status != 200][:5]
    assert len(_nodes(samples)) == 3
    procs.stop(runtime, aggregator.PROCESS)  # forget the killed one's pid file
    aggregator.start(runtime)
    wait_for(lambda: _local(st), 40, "local preference back with a new aggregator")


def test_the_python_reference_proxy_reads_the_aggregator_the_same_way(agg_cluster):
    runtime, st = agg_cluster
    # classic, as the kube-proxy kind "rap" above (the Python proxy's default is the table's, adaptive)
    st = cluster.switch_proxy("python", "rap", runtime, monitor="aggregator", python_mode="classic")
    assert aggregator.running(runtime)
    got = scenario(st)
    assert _shares(got["light"])["node-1"] == 1.0, got
    assert _shares(got["heavy"])["node-2"] >= 0.8, got
