"""rap.sim.model: pod queues against queueing theory, CFS throttling, arrivals, the real policies' bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from rap.config import RapConfig
from rap.policies import make_policy
from rap.sim.model import Client, Cluster, ClusterSim, Pod, Workload, erlang_c_sojourn_s


def _cluster(pods_per_node=(1,), cpu_limit=None, workers=1, rtt_ms=None):
    n = len(pods_per_node)
    pods = tuple(Pod(f"p{i}-{k}", f"10.0.{i}.{k + 1}", i, "svc", cpu_limit, workers=workers)
                 for i, count in enumerate(pods_per_node) for k in range(count))
    rtt = np.zeros((n, n)) if rtt_ms is None else np.asarray(rtt_ms, dtype=float)
    return Cluster(tuple(f"node-{i + 1}" for i in range(n)), tuple(range(n)), 1.0, pods, rtt)


def _run(cluster, clients, workload, policy="round-robin", end_s=100.0, seed=3):
    policies = [make_policy(policy, local_node=name, config=RapConfig(), seed=i)
                for i, name in enumerate(cluster.nodes)]
    sim = ClusterSim(cluster, clients, workload, policies, policy, end_s=end_s, seed=seed)
    return sim, sim.run()


@pytest.mark.parametrize("servers,rho", [(1, 0.5), (1, 0.8), (2, 0.5), (2, 0.8)])
def test_pod_queue_gives_mm_c_mean_time_in_system(servers, rho):
    service_ms = 10.0
    rate = rho * servers / (service_ms / 1000)
    w = Workload(cpu_ms=service_ms, arrivals="poisson", service_times="exponential", timeout_s=1e6)
    _, s = _run(_cluster(workers=servers), [Client(0, "svc", ((0.0, rate),))], w, end_s=4000 / rate * 10)
    expected = erlang_c_sojourn_s(rate, service_ms / 1000, servers) * 1000
    assert s.latency_ms.mean() == pytest.approx(expected, rel=0.08)


def test_latency_grows_with_load():
    w = Workload(cpu_ms=10.0, arrivals="poisson", service_times="exponential", timeout_s=1e6)
    means = [_run(_cluster(), [Client(0, "svc", ((0.0, r),))], w, end_s=400)[1].latency_ms.mean()
             for r in (20, 50, 80)]
    assert means[0] < means[1] < means[2]
    assert means[2] > 3 * means[0]  # M/M/1: 10/(1-0.8) = 50 ms against 10/(1-0.2) = 12.5 ms


def test_cfs_quota_caps_throughput_and_leaves_a_lone_request_at_full_speed():
    # 0.25 CPU, 20 ms per request: 12.5 req/s at most; 30 req/s offered for 20 s
    w = Workload(cpu_ms=20.0, timeout_s=1e6)
    sim, s = _run(_cluster(cpu_limit=0.25), [Client(0, "svc", ((0.0, 30.0), (20.0, 0.0)))], w, end_s=20)
    done_by_20 = np.sort(s.start * 1000 + s.latency_ms)[:] <= 20_000
    assert done_by_20.sum() / 20 == pytest.approx(12.5, rel=0.05)
    assert sim.pod_queues[0].cpu_s == pytest.approx(len(s) * 0.020)
    _, lone = _run(_cluster(cpu_limit=0.25), [Client(0, "svc", ((0.0, 1.0),))], w, end_s=5)
    assert lone.latency_ms.max() == pytest.approx(20.0)


def test_periodic_arrivals_are_the_load_generators_schedule():
    w = Workload(cpu_ms=1.0)
    _, s = _run(_cluster(), [Client(0, "svc", ((1.0, 20.0), (3.0, 0.0), (4.0, 10.0), (5.0, 0.0)))], w, end_s=6)
    assert len(s) == 40 + 10
    assert s.start[0] == pytest.approx(1.0) and s.start[1] == pytest.approx(1.05)
    assert not ((s.start >= 3.0) & (s.start < 4.0)).any()


def test_round_robin_spreads_evenly_and_every_connection_is_released():
    cluster = _cluster(pods_per_node=(2, 2, 2), rtt_ms=np.full((3, 3), 10.0) - 10 * np.eye(3))
    sim, s = _run(cluster, [Client(0, "svc", ((0.0, 60.0),))], Workload(cpu_ms=1.0), end_s=10)
    counts = np.bincount(s.server, minlength=3)
    assert counts.tolist() == [200, 200, 200]
    remote = s.server != s.client
    # two round trips of 10 ms on a remote request, none on a local one
    assert s.latency_ms[remote].min() == pytest.approx(21.0)
    assert s.latency_ms[~remote].max() == pytest.approx(1.0)
    for ep in sim.policies[0].endpoints("svc"):
        assert sim.policies[0].active("svc", ep) == 0


def test_least_request_sees_connections_in_flight():
    # one slow pod per node on two nodes, no RTT: least-request must not pile onto the busier one
    cluster = _cluster(pods_per_node=(1, 1))
    w = Workload(cpu_ms=40.0, arrivals="poisson", timeout_s=1e6)
    _, s = _run(cluster, [Client(0, "svc", ((0.0, 40.0),))], w, policy="least-request", end_s=60)
    share = np.bincount(s.server, minlength=2) / len(s)
    assert share.min() > 0.4
    # without the bookkeeping (releases never heard) the counts would only grow and still alternate;
    # with it, queues stay short: the p99 stays near a few service times
    assert np.percentile(s.latency_ms, 99) < 400


def test_serial_dial_queues_remote_dials_for_round_robin_only():
    cluster = _cluster(pods_per_node=(1, 1), rtt_ms=[[0, 40.0], [40.0, 0]])
    w = Workload(cpu_ms=1.0, serial_dial=frozenset({"round-robin"}))
    clients = [Client(0, "svc", ((0.0, 40.0),))]  # every other dial remote (40 ms), one every 25 ms
    _, serial = _run(cluster, clients, w, end_s=20)
    _, free = _run(cluster, clients, Workload(cpu_ms=1.0), end_s=20)
    assert np.median(free.latency_ms[free.server == 1]) == pytest.approx(81.0)
    assert np.median(free.latency_ms[free.server == 0]) == pytest.approx(1.0)
    # behind the serial accept loop, a local connection waits out the remote dial begun 25 ms before it
    assert np.median(serial.latency_ms[serial.server == 0]) == pytest.approx(1.0 + 40 - 25)
    assert np.median(serial.latency_ms[serial.server == 1]) == pytest.approx(81.0)


def test_a_request_past_the_timeout_fails_at_the_timeout():
    w = Workload(cpu_ms=500.0, timeout_s=1.0)
    _, s = _run(_cluster(), [Client(0, "svc", ((0.0, 10.0),))], w, end_s=2)
    assert (~s.ok).any() and s.ok.any()
    assert s.latency_ms.max() == pytest.approx(1000.0)
    assert (s.server[~s.ok] == -1).all()


def test_erlang_c_formula_on_known_values():
    # M/M/1: 1 / (mu - lambda); M/M/2 at a = 1: P(wait) = 1/3, W = 1/3 * s / (2 * 0.5) + s
    assert erlang_c_sojourn_s(50, 0.01, 1) == pytest.approx(1 / (100 - 50))
    assert erlang_c_sojourn_s(100, 0.01, 2) == pytest.approx(0.01 / 3 / 1.0 + 0.01)
    assert erlang_c_sojourn_s(100, 0.01, 1) == float("inf")
