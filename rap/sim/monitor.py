"""What the simulated policies see: a metrics API over the pods' CPU, and one RAP monitor per node.

As on a real cluster (docs/algorithm.md, "Inputs"; rap.localcluster.metrics):

- the *metrics API* samples every pod's CPU counter each ``metrics_interval_s``
  and publishes, per pod, the CPU rate between the newest sample and the
  latest one at least ``metrics_window_s`` older (shorter just after start),
  as a fraction of the pod's limit, timestamped with the newest sample; a
  node's use is the sum of its pods' rates over its allocatable;
- each node's *monitor* wakes every ``period_s`` (each at its own phase, as
  kube-proxies start at different times), takes what the metrics API
  publishes at that moment with its timestamps (so a sample is as old as the
  scrape it came from, and goes stale after ``stale_after_s``), adds the RTT
  from its node to every other node measured now, and swaps the snapshot in
  with ``update_snapshot``, as rap.go's monitor does.

A node's snapshot holds the pods and nodes of the endpoints its policy knows,
and its own node: a decision reads nothing else, and leaving the rest out
keeps 500 monitors affordable. RTTs are to every node (``rtt_max`` is over all).
With a bounded view (``view_nodes`` > 0, the aggregated monitor's: docs/scale.md
"The bounded view") it holds only the endpoints on the nodes the real reader
would watch for the Services the node's policy carries
(rap.pyproxy.aggmonitor.watched_nodes) and names them in the snapshot's
``watched``, so the policy treats every other endpoint as the real one does.
A node's policy carries only the Services its clients call (model.py); a
kube-proxy carries every Service, which adds nodes to its view but changes
no decision for these.

Not here: the decision (rap.policies), the queues (model.py).
"""

from __future__ import annotations

import random
from collections import deque

from rap.pyproxy.aggmonitor import watched_nodes
from rap.sim.model import Cadence, ClusterSim
from rap.snapshot import Rtt, Snapshot, Usage


class MetricsApi:
    """metrics.k8s.io over the simulated pods: CPU rates over a window, refreshed every interval."""

    def __init__(self, sim: ClusterSim, cadence: Cadence) -> None:
        self.sim, self.cadence = sim, cadence
        self.pods: dict[str, Usage] = {}  # by pod IP: what a read returns now
        self.nodes: dict[str, Usage] = {}  # by node name
        self.scrapes = 0
        self._history: deque[tuple[float, list[float]]] = deque()

    def run(self):
        env = self.sim.env
        while True:
            self.scrape(env.now)
            yield env.timeout(self.cadence.metrics_interval_s)

    def scrape(self, now: float) -> None:
        cluster = self.sim.cluster
        counters = [q.cpu_s for q in self.sim.pod_queues]
        self._history.append((now, counters))
        h = self._history
        while len(h) > 2 and now - h[1][0] >= self.cadence.metrics_window_s - 1e-9:
            h.popleft()  # h[0] stays the latest sample at least a window old
        self.scrapes += 1
        if len(h) < 2:
            return  # one sample is no rate yet: nothing published
        (t_old, old), (t_new, new) = h[0], h[-1]
        span = t_new - t_old
        mem = cluster.mem_fraction
        per_node = [0.0] * len(cluster.nodes)
        pods = {}
        for pod, a, b in zip(cluster.pods, old, new):
            rate = (b - a) / span
            per_node[pod.node] += rate
            limit = pod.cpu_limit or cluster.node_cpu
            pods[pod.ip] = Usage(rate / limit, mem, t_new)
        self.pods = pods
        self.nodes = {name: Usage(per_node[i] / cluster.node_cpu, mem, t_new)
                      for i, name in enumerate(cluster.nodes)}


class NodeMonitors:
    """Every node's RAP monitor: each period, a new snapshot into that node's policy."""

    def __init__(self, sim: ClusterSim, metrics: MetricsApi, cadence: Cadence, seed: int,
                 view_nodes: int = 0) -> None:
        self.sim, self.metrics, self.cadence = sim, metrics, cadence
        self.snapshots = 0
        cluster = sim.cluster
        self._rtt = sim.cluster.rtt_ms
        # per node: the pod IPs and node names its policy can read, and its bounded view (None: unbounded)
        self._reads: list[tuple[list[str], list[str]]] = []
        self._watched: list[frozenset[str] | None] = []
        for i, policy in enumerate(sim.policies):
            endpoints = [ep for svc in sorted({c.service for c in sim.clients if c.node == i})
                         for ep in policy.endpoints(svc)]
            watched = watched_nodes(cluster.nodes[i], policy.service_nodes(), view_nodes)
            seen = [ep for ep in endpoints if watched is None or ep.node in watched]
            self._reads.append((sorted({ep.ip for ep in seen}), sorted({cluster.nodes[i], *(ep.node for ep in seen)})))
            self._watched.append(watched)
        rng = random.Random(seed)
        self._phase = [rng.uniform(0, cadence.period_s) for _ in cluster.nodes]

    def start(self) -> None:
        for i in range(len(self.sim.cluster.nodes)):
            if self._reads[i][0]:  # a node without clients decides nothing
                self.sim.env.process(self._run(i))

    def _run(self, i: int):
        env = self.sim.env
        yield env.timeout(self._phase[i])
        while True:
            self.refresh(i, env.now)
            yield env.timeout(self.cadence.period_s)

    def refresh(self, i: int, now: float) -> Snapshot:
        names = self.sim.cluster.nodes
        ips, nodes = self._reads[i]
        pods, usage = self.metrics.pods, self.metrics.nodes
        row = self._rtt[i]
        snap = Snapshot(
            pods={ip: pods[ip] for ip in ips if ip in pods},
            nodes={n: usage[n] for n in nodes if n in usage},
            rtt={name: Rtt(float(row[j]), now) for j, name in enumerate(names) if j != i},
            watched=self._watched[i])
        self.snapshots += 1
        return self.sim.policies[i].update_snapshot(snap)


def start(sim: ClusterSim, cadence: Cadence, seed: int, view_nodes: int = 0) -> tuple[MetricsApi, NodeMonitors]:
    """The metrics API and every node's monitor (bounded to ``view_nodes`` per Service when > 0), running in
    ``sim``'s environment."""
    metrics = MetricsApi(sim, cadence)
    monitors = NodeMonitors(sim, metrics, cadence, seed, view_nodes)
    sim.env.process(metrics.run())
    monitors.start()
    return metrics, monitors
