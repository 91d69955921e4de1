"""The simulator's scenarios: the bench's 3-node shape, and a large cluster with many overloaded nodes.

- ``from_bench(name)``: a scenario of rap/bench/scenarios.toml (default ``rates``: the geo
  shape under open-loop steps) with its shape, load and cadence read from that
  file, not restated here, so that the simulator can be checked against
  `invoke bench` (run.py's validation).
- ``large(nodes, overloaded)``: ``nodes`` nodes in ``zones`` zones; each node
  hosts two pods of one Service (node i: zone i mod zones, Service
  (i div zones) mod services), so every Service has pods in every zone; every
  node's clients call the Service it hosts. All nodes are lightly loaded, then
  at ``step_at_s`` the ``overloaded`` client nodes (spread evenly over Services
  and zones) step up to twice what their pods take below RAP's threshold, and
  must send the excess elsewhere. RTTs: ``intra_zone_ms`` inside a zone,
  ``inter_zone_ms`` plus ``per_zone_ms`` per zone of distance between zones,
  each pair jittered by up to ``jitter`` either way (seeded, symmetric).

Not here: running them (run.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rap.bench.scenarios import SCENARIOS as BENCH_SCENARIOS
from rap.bench.scenarios import Scenario as BenchScenario
from rap.sim.model import Cadence, Client, Cluster, Pod, Workload

# The policies the simulator runs: label -> (rap.policies name, RAP mode), the bench's labels.
POLICIES: dict[str, tuple[str, str | None]] = {
    "round-robin": ("round-robin", None),
    "rap": ("rap", "classic"),
    "rap-adaptive": ("rap", "adaptive"),
    "least-request": ("least-request", None),
    "rap-view": ("rap", "classic"),
    "rap-adaptive-view": ("rap", "adaptive"),
}
# The labels whose monitors read through the aggregated monitor's bounded view (docs/scale.md "The bounded
# view") of --view-nodes nodes per Service; the others read every node they need.
VIEW_LABELS = frozenset({"rap-view", "rap-adaptive-view"})
BENCH_SCENARIO = "rates"
# rap.bench.runner starts one load generator per step; between two steps nothing is sent for about this long
STEP_GAP_S = 0.5


@dataclass(frozen=True)
class Window:
    """A span of request start times that the report measures on its own (a load step)."""

    label: str
    from_s: float
    to_s: float


@dataclass(frozen=True)
class SimScenario:
    name: str
    title: str
    description: str
    cluster: Cluster
    clients: tuple[Client, ...]
    workload: Workload
    cadence: Cadence
    end_s: float  # clients stop sending
    windows: tuple[Window, ...]
    step_at_s: float | None = None  # the load step whose settle time is reported (None: none)
    bench: str | None = None  # the bench scenario it reproduces

    def services(self) -> list[str]:
        return sorted({c.service for c in self.clients})


def _node_names(n: int) -> tuple[str, ...]:
    return tuple(f"node-{i + 1}" for i in range(n))


def from_bench(name: str = BENCH_SCENARIO, workload: Workload | None = None, *, quick: bool = False,
               rates: tuple[float, ...] | None = None, duration_s: float | None = None,
               warmup_s: float | None = None) -> SimScenario:
    """The bench scenario ``name`` (an open-loop one), as `invoke bench` (``quick``: `--quick`) runs it.

    ``rates``, ``duration_s`` and ``warmup_s`` override the file's, e.g. with what a measured
    run's summary.json says it ran.
    """
    s: BenchScenario = BENCH_SCENARIOS[name]
    if s.mode != "open":
        raise ValueError(f"bench scenario {name!r} is closed-loop; the simulator's clients are open-loop")
    if quick:
        from rap.bench.scenarios import QUICK

        s = replace(s, duration_s=QUICK["duration_s"], warmup_s=QUICK["warmup_s"], rates=s.quick_rates or s.rates)
    s = replace(s, rates=tuple(rates) if rates else s.rates, duration_s=duration_s or s.duration_s,
                warmup_s=s.warmup_s if warmup_s is None else warmup_s)
    names = _node_names(s.nodes)
    rtt = np.zeros((s.nodes, s.nodes))
    for a, b, ms in s.rtt_ms:
        rtt[a - 1, b - 1] = rtt[b - 1, a - 1] = ms
    pods = tuple(Pod(f"pod-{i}-{k + 1}", f"10.200.{i}.{k + 10}", i - 1, "backend", s.pod_cpu)
                 for i in range(1, s.nodes + 1) for k in range(s.pods_on(i)))
    cluster = Cluster(names, tuple(range(s.nodes)), s.node_cpu, pods, rtt)
    windows, schedule, t = [], [], s.warmup_s
    for rate in s.rates:
        windows.append(Window(f"{rate:g}", t, t + s.duration_s))
        schedule += [(t, float(rate)), (t + s.duration_s, 0.0)]
        t += s.duration_s + STEP_GAP_S
    clients = tuple(Client(c - 1, "backend", tuple(schedule)) for c in s.clients)
    w = workload or Workload(cpu_ms=s.cpu_ms)
    w = replace(w, cpu_ms=s.cpu_ms, arrivals="periodic", timeout_s=s.timeout_s,
                serial_dial=frozenset({"round-robin"}))
    cadence = Cadence(s.rap_period_s, s.metrics_interval_s, s.metrics_window_s)
    shape = "/".join(str(s.pods_on(i)) for i in range(1, s.nodes + 1))
    return SimScenario(
        f"bench-{s.name}", f"{s.title} ({s.nodes} nodes, as `invoke bench`)",
        f"rap/bench/scenarios.toml's {s.name!r}: {s.nodes} nodes, pods {shape} of {s.pod_cpu:g} CPU, "
        f"{s.cpu_ms:g} ms of CPU per request, open loop at {', '.join(f'{r:g}' for r in s.rates)} req/s "
        f"from {', '.join(names[c - 1] for c in s.clients)}, {s.duration_s:g} s per step after a "
        f"{s.warmup_s:g} s warm-up; round robin dials one connection at a time, as upstream's userspace "
        "kube-proxy does.",
        cluster, clients, w, cadence, end_s=t, windows=tuple(windows), bench=s.name)


@dataclass(frozen=True)
class LargeShape:
    """The large scenario's knobs (docs/scale.md, "The simulator")."""

    nodes: int = 500
    overloaded: int = 50
    zones: int = 5
    nodes_per_service: int = 50
    pods_per_node: int = 2
    pod_cpu: float = 0.25
    node_cpu: float = 2.0
    cpu_ms: float = 20.0
    light_rps: float = 4.0  # every node's clients, throughout (16% of its pods' limit at 20 ms)
    overload_factor: float = 2.0  # the overloaded nodes' rate after the step, x what their pods take at the threshold
    intra_zone_ms: float = 2.0
    inter_zone_ms: float = 20.0
    per_zone_ms: float = 15.0
    jitter: float = 0.25
    warmup_s: float = 20.0  # light load only; measured from 10 s
    after_s: float = 60.0  # after the step
    cadence: Cadence = Cadence(period_s=5.0, metrics_interval_s=15.0, metrics_window_s=15.0)


def large(shape: LargeShape = LargeShape(), workload: Workload | None = None, *, seed: int = 1) -> SimScenario:
    n, z = shape.nodes, shape.zones
    services = max(1, n // shape.nodes_per_service)
    names = _node_names(n)
    zones = tuple(i % z for i in range(n))
    service_of = [f"svc-{(i // z) % services + 1}" for i in range(n)]
    rng = np.random.default_rng(seed)
    zi = np.array(zones)
    dist = np.abs(zi[:, None] - zi[None, :])
    base = np.where(dist == 0, shape.intra_zone_ms, shape.inter_zone_ms + shape.per_zone_ms * (dist - 1))
    jitter = rng.uniform(1 - shape.jitter, 1 + shape.jitter, size=(n, n))
    jitter = np.triu(jitter, 1) + np.triu(jitter, 1).T
    rtt = base * jitter
    np.fill_diagonal(rtt, 0.0)
    pods = tuple(Pod(f"pod-{i + 1}-{k + 1}", f"10.{100 + i // 250}.{i % 250}.{k + 10}", i, service_of[i],
                     shape.pod_cpu) for i in range(n) for k in range(shape.pods_per_node))
    cluster = Cluster(names, zones, shape.node_cpu, pods, rtt)
    w = workload or Workload(cpu_ms=shape.cpu_ms)
    w = replace(w, cpu_ms=shape.cpu_ms, arrivals="poisson", serial_dial=frozenset())
    # what one node's pods take below the threshold (0.8 of their limit), at the request's whole CPU cost
    from rap.config import RapConfig

    threshold = RapConfig().cpu_threshold
    at_threshold = shape.pods_per_node * shape.pod_cpu * threshold / ((w.cpu_ms + w.http_cpu_ms) / 1000.0)
    heavy = shape.overload_factor * at_threshold
    stepped = set(_spread(service_of, zones, shape.overloaded))
    step = shape.warmup_s
    clients = tuple(Client(i, service_of[i], ((0.0, shape.light_rps), (step, heavy)) if i in stepped
                           else ((0.0, shape.light_rps),), stepped=i in stepped) for i in range(n))
    end = step + shape.after_s
    return SimScenario(
        f"large-{n}", f"{n} nodes, {len(stepped)} of them overloaded after {step:g} s",
        f"{n} nodes in {z} zones, {services} Services of {n // services} nodes each (two {shape.pod_cpu:g}-CPU "
        f"pods per node, {shape.cpu_ms:g} ms of CPU per request); every node's clients call its own Service at "
        f"{shape.light_rps:g} req/s (Poisson); at {step:g} s, {len(stepped)} nodes (spread over Services and "
        f"zones) step to {heavy:.0f} req/s, {shape.overload_factor:g}x what their pods take at the 0.8 "
        f"threshold. RTT {shape.intra_zone_ms:g} ms inside a zone, {shape.inter_zone_ms:g} ms + "
        f"{shape.per_zone_ms:g} ms per zone of distance between zones, +-{shape.jitter:.0%} per pair. Monitor "
        f"every {shape.cadence.period_s:g} s, metrics every {shape.cadence.metrics_interval_s:g} s over "
        f"{shape.cadence.metrics_window_s:g} s (metrics-server's release cadence).",
        cluster, clients, w, shape.cadence, end_s=end,
        windows=(Window("before", min(10.0, step / 2), step), Window("after", step, end)), step_at_s=step)


def _spread(service_of: list[str], zones: tuple[int, ...], count: int) -> list[int]:
    """``count`` nodes taken in turn from each (Service, zone) group, so they spread over both."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (svc, zone) in enumerate(zip(service_of, zones)):
        groups.setdefault((svc, zone), []).append(i)
    order = sorted(groups)
    chosen, depth = [], 0
    while len(chosen) < min(count, len(service_of)):
        for key in order:
            if depth < len(groups[key]) and len(chosen) < count:
                chosen.append(groups[key][depth])
        depth += 1
    return chosen


QUICK_LARGE = LargeShape(nodes=100, overloaded=10, warmup_s=10.0, after_s=20.0,
                         cadence=Cadence(period_s=2.0, metrics_interval_s=2.0, metrics_window_s=4.0))
