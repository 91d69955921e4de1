"""Decisions per second of each policy (pytest-benchmark; run with `invoke bench-policies`).

Skipped by the default test run's --benchmark-disable (each body then runs once,
so the code is still exercised); `invoke bench-policies` runs them for real and
prints the table and RAP's ratio to round robin.
"""

import pytest

from rap.policies import POLICY_NAMES, Endpoint, make_policy
from rap.snapshot import Rtt, Snapshot, Usage

SVC = "ns/svc:http"
BATCH = 1000


def _cluster(n_endpoints: int):
    nodes = [f"node-{i}" for i in range(max(3, n_endpoints // 10))]
    eps = [Endpoint(f"10.2.{i // 250}.{i % 250 + 1}", 8080, nodes[i % len(nodes)]) for i in range(n_endpoints)]
    # The local node is overloaded, so RAP takes its full path (scoring remote nodes).
    snap = Snapshot(
        pods={e.ip: Usage(0.3, 0.3, 0) for e in eps},
        nodes={n: Usage(0.95 if n == nodes[0] else 0.2 + i / 100, 0.3, 0) for i, n in enumerate(nodes)},
        rtt={n: Rtt(5.0 + i, 0) for i, n in enumerate(nodes[1:])},
    )
    return nodes[0], eps, snap


@pytest.mark.parametrize("n_endpoints", [3, 30, 300])
@pytest.mark.parametrize("policy_name", POLICY_NAMES)
def test_decisions(benchmark, policy_name, n_endpoints):
    local, eps, snap = _cluster(n_endpoints)
    policy = make_policy(policy_name, local_node=local, seed=1)
    policy.set_endpoints(SVC, eps)
    policy.update_snapshot(snap)
    clock = [1.0]

    def decide_batch():
        # Time advances so RAP's freshness checks run, but inputs stay fresh (< 15 s).
        now = clock[0] = (clock[0] + 0.001) % 10
        for _ in range(BATCH):
            ep = policy.next_endpoint(SVC, "192.0.2.1", now)
            policy.release(SVC, ep)

    benchmark.extra_info.update(policy=policy_name, endpoints=n_endpoints, batch=BATCH)
    benchmark(decide_batch)
