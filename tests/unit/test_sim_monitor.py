"""rap.sim.monitor: the metrics API's rates and timestamps, the per-node snapshots, and RAP acting on them."""

from __future__ import annotations

import numpy as np
import pytest

from rap.sim import monitor
from rap.sim.model import Cadence, Client, Cluster, ClusterSim, Pod, Workload
from rap.sim.run import make_policies, simulate
from rap.sim.scenarios import LargeShape, SimScenario, Window, from_bench, large


def _two_nodes(cpu_limit=0.5, rtt=10.0):
    pods = (Pod("a", "10.0.0.1", 0, "svc", cpu_limit), Pod("b", "10.0.1.1", 1, "svc", cpu_limit))
    return Cluster(("node-1", "node-2"), (0, 0), 1.0, pods, np.array([[0, rtt], [rtt, 0]]))


def _scenario(cluster, clients, cadence, end_s=30.0, w=Workload(cpu_ms=10.0)):
    return SimScenario("t", "t", "t", cluster, tuple(clients), w, cadence, end_s, (Window("all", 0, end_s),))


def test_metrics_rate_over_the_window_as_fraction_of_limit_with_the_scrape_time():
    cadence = Cadence(period_s=1.0, metrics_interval_s=0.5, metrics_window_s=2.0)
    s = _scenario(_two_nodes(), [Client(0, "svc", ((0.0, 10.0),))], cadence)
    sim = ClusterSim(s.cluster, list(s.clients), s.workload, make_policies(s, "round-robin", 1), "round-robin",
                     end_s=s.end_s, seed=1)
    metrics, monitors = monitor.start(sim, cadence, seed=1)
    sim.env.run(until=20.2)
    # 10 req/s, half to each pod, 10 ms each: 0.05 CPU of a 0.5 limit
    assert metrics.pods["10.0.0.1"].cpu == pytest.approx(0.1, abs=0.02)
    assert metrics.pods["10.0.0.1"].at == pytest.approx(20.0)
    assert metrics.nodes["node-1"].cpu == pytest.approx(0.05, abs=0.01)  # of the node's 1 core
    snap = monitors.refresh(0, 20.2)
    assert snap.pods["10.0.1.1"].at == pytest.approx(20.0)  # as old as the scrape, not the monitor's read
    assert snap.rtt["node-2"].ms == 10.0 and snap.rtt["node-2"].at == pytest.approx(20.2)
    assert "node-1" not in snap.rtt


def test_a_scrape_slower_than_stale_after_leaves_rap_blind():
    # metrics every 10 s, period 1 s: stale after 3 s, so RAP sees data only 3 s in every 10
    cadence = Cadence(period_s=1.0, metrics_interval_s=10.0, metrics_window_s=10.0)
    s = _scenario(_two_nodes(), [Client(0, "svc", ((0.0, 5.0),))], cadence, end_s=40)
    policies = make_policies(s, "rap", 1)
    sim = ClusterSim(s.cluster, list(s.clients), s.workload, policies, "rap", end_s=s.end_s, seed=1)
    monitor.start(sim, cadence, seed=1)
    sim.env.run(until=25.5)  # last scrape at 20 s; 5.5 s old
    assert "blind" in policies[0].explain("svc", 25.5)
    sim.env.run(until=32.5)  # scrape at 30 s, 2.5 s old
    assert "local" in policies[0].explain("svc", 32.5)


def test_rap_forwards_once_its_pod_is_overloaded_and_classic_does_it_whole_periods_at_a_time():
    # node-1's one pod takes 0.5 / 10 ms = 50 req/s; 60 req/s offered (1.5x its 40 at the threshold)
    cadence = Cadence(period_s=1.0, metrics_interval_s=0.5, metrics_window_s=2.0)
    s = _scenario(_two_nodes(), [Client(0, "svc", ((0.0, 60.0),))], cadence, end_s=40)
    local, all_or_nothing = {}, {}
    for label in ("rap", "rap-adaptive", "round-robin"):
        smp = simulate(s, label, seed=2).samples
        late = smp.start >= 10
        local[label] = float((smp.server[late] == 0).mean())
        half_seconds = np.floor(smp.start[late] * 2).astype(int)
        shares = np.array([(smp.server[late][half_seconds == k] == 0).mean() for k in np.unique(half_seconds)])
        all_or_nothing[label] = float(((shares <= 0.1) | (shares >= 0.9)).mean())
    assert local["round-robin"] == pytest.approx(0.5, abs=0.01)
    assert all_or_nothing["round-robin"] == 0
    for label in ("rap", "rap-adaptive"):
        assert 0.2 < local[label] < 0.8  # forwards, and serves locally again once the pod has cooled
    # classic: local or remote for a whole period (one plan per snapshot)
    assert all_or_nothing["rap"] > 0.9


def test_every_nodes_policy_gets_snapshots_and_the_large_shape_is_as_stated():
    shape = LargeShape(nodes=50, overloaded=5, warmup_s=4, after_s=4,
                       cadence=Cadence(period_s=1.0, metrics_interval_s=1.0, metrics_window_s=2.0))
    s = large(shape)
    assert len(s.cluster.nodes) == 50 and len(s.cluster.pods) == 100
    assert sum(c.stepped for c in s.clients) == 5
    # the overloaded nodes spread over zones: one per zone
    assert sorted(s.cluster.zones[c.node] for c in s.clients if c.stepped) == [0, 1, 2, 3, 4]
    rtt = s.cluster.rtt_ms
    assert np.allclose(rtt, rtt.T) and (np.diag(rtt) == 0).all()
    same = np.equal.outer(s.cluster.zones, s.cluster.zones) & ~np.eye(50, dtype=bool)
    assert rtt[same].max() < rtt[~same & ~np.eye(50, dtype=bool)].min()
    r = simulate(s, "rap-adaptive", seed=1)
    assert r.snapshots >= 50 * 7  # each node, every period
    assert len(r.samples) > 0


def test_the_bench_scenario_is_read_from_scenarios_toml():
    from rap.bench.scenarios import SCENARIOS

    b = SCENARIOS["rates"]
    s = from_bench("rates")
    assert len(s.cluster.nodes) == b.nodes
    assert [w.label for w in s.windows] == [f"{r:g}" for r in b.rates]
    assert s.windows[0].from_s == b.warmup_s and s.windows[0].to_s - s.windows[0].from_s == b.duration_s
    assert s.cluster.rtt_ms[0, 2] == dict(((a, c), ms) for a, c, ms in b.rtt_ms)[(1, 3)]
    assert {p.cpu_limit for p in s.cluster.pods} == {b.pod_cpu}
    assert s.workload.cpu_ms == b.cpu_ms
    assert (s.cadence.period_s, s.cadence.metrics_interval_s) == (b.rap_period_s, b.metrics_interval_s)
    q = from_bench("rates", quick=True)
    assert [w.label for w in q.windows] == [f"{r:g}" for r in b.quick_rates]


def test_a_bounded_view_reads_only_the_watched_nodes_and_says_so():
    # five nodes of one Service; node-1's view of 2 takes the two others ranked highest from it
    from rap.pyproxy.aggmonitor import watched_nodes

    names = tuple(f"node-{i}" for i in range(1, 6))
    pods = tuple(Pod(f"p{i}", f"10.0.{i}.1", i, "svc", 0.5) for i in range(5))
    cluster = Cluster(names, (0,) * 5, 1.0, pods, np.full((5, 5), 5.0) - 5.0 * np.eye(5))
    cadence = Cadence(period_s=1.0, metrics_interval_s=0.5, metrics_window_s=2.0)
    s = _scenario(cluster, [Client(0, "svc", ((0.0, 10.0),))], cadence)
    sim = ClusterSim(s.cluster, list(s.clients), s.workload, make_policies(s, "rap-adaptive-view", 1),
                     "rap-adaptive-view", end_s=s.end_s, seed=1)
    metrics, monitors = monitor.start(sim, cadence, seed=1, view_nodes=2)
    sim.env.run(until=5.2)
    snap = monitors.refresh(0, 5.2)
    want = watched_nodes("node-1", [list(names)], 2)
    assert len(want) == 3 and snap.watched == want
    assert set(snap.nodes) == want and {ip for ip in snap.pods} == {p.ip for p in pods if names[p.node] in want}
    unseen = next(n for n in names if n not in want)
    assert snap.unwatched(unseen, "node-1") and not snap.unwatched("node-1", "node-1")
    unbounded = monitor.NodeMonitors(sim, metrics, cadence, seed=1).refresh(0, 5.2)
    assert unbounded.watched is None and len(unbounded.pods) == 5
