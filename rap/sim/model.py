"""The simulated cluster: nodes, pods as CPU-limited queues, an RTT matrix, clients, load steps (SimPy).

What a request goes through (docs/scale.md, "The simulator"): a client on node
C opens a connection to the Service; C's policy (one real ``rap.policies``
object per node) picks an endpoint; the proxy dials it (one round trip when it
is on another node) and the request crosses to the pod (half a round trip);
the pod serves it in arrival order, burning the workload's CPU under its CPU
limit; the answer crosses back (half a round trip) and the connection closes,
which the policy hears as ``release``. A fixed ``overhead_ms`` stands for what
the local path costs outside the pod's CPU (the proxy hop, connection set-up,
the load generator's own lateness).

A pod's CPU limit is applied as the Linux CFS quota applies a cgroup's
``cpu.max``: the pod runs at the speed of one core while the quota of the
current 100 ms period lasts, and is throttled to the period's end when it
runs out. So an idle pod serves a lone request in its CPU time, and a busy one
serves ``cpu_limit / cpu_per_request`` requests per second.

Not here: the decisions (rap.policies, unchanged), what the policies see
(monitor.py), driving runs (run.py), statistics (report.py).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import simpy

from rap.policies import Endpoint, Policy

CFS_PERIOD_S = 0.1  # the cgroup's cpu.max period (rap.localcluster.cgroups.DEFAULT_PERIOD_US)
ROUND_TRIPS_BEFORE_POD = 1.5  # the dial's SYN/SYN-ACK, then the request's one way
ROUND_TRIPS_AFTER_POD = 0.5  # the answer's one way back
ARRIVALS = ("periodic", "poisson")
SERVICE_TIMES = ("fixed", "exponential")


@dataclass(frozen=True)
class Pod:
    name: str
    ip: str
    node: int  # index into Cluster.nodes
    service: str
    cpu_limit: float | None  # cores; None: no limit (a test's plain M/M/c queue)
    port: int = 8080
    workers: int = 1  # requests served at once: 1, as the backend's Python threads share one GIL

    @property
    def addr(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[str, ...]
    zones: tuple[int, ...]  # per node
    node_cpu: float  # allocatable cores per node
    pods: tuple[Pod, ...]
    rtt_ms: np.ndarray  # nodes x nodes, symmetric, 0 on the diagonal
    mem_fraction: float = 0.3  # every pod's and node's memory use (memory is not simulated)

    def endpoints(self, service: str) -> list[Endpoint]:
        return [Endpoint(p.ip, p.port, self.nodes[p.node]) for p in self.pods if p.service == service]


@dataclass(frozen=True)
class Client:
    """Open-loop load from one node to one Service: ``schedule`` is ((from_s, rate_rps), ...), rising from_s."""

    node: int
    service: str
    schedule: tuple[tuple[float, float], ...]
    stepped: bool = False  # its rate changes at the scenario's load step

    def rate_at(self, t: float) -> tuple[float, float]:
        """The rate at ``t`` and when it next changes (inf: never)."""
        rate = 0.0
        for start, r in self.schedule:
            if start > t:
                return rate, start
            rate = r
        return rate, math.inf


@dataclass(frozen=True)
class Workload:
    cpu_ms: float  # the backend's CPU per request (the scenario's cpu_ms)
    http_cpu_ms: float = 0.0  # the backend's own HTTP handling, CPU on top of cpu_ms (calibrated)
    overhead_ms: float = 0.0  # the local path outside the pod's CPU (calibrated)
    arrivals: str = "periodic"  # rap.loadgen's open loop starts request i at i / rate
    service_times: str = "fixed"
    timeout_s: float = 10.0  # the client's timeout: a longer request counts as failed, at the timeout
    # Upstream kube-proxy's userspace mode dials in its accept loop, one dial at a time per node
    # (docs/bench.md); the policies listed here get that data path, the others dial concurrently.
    serial_dial: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Cadence:
    """RAP's monitor period and the metrics API's sampling, as the bench's scenarios state them."""

    period_s: float = 5.0
    metrics_interval_s: float = 15.0
    metrics_window_s: float = 15.0


@dataclass
class Samples:
    """Per request, in completion order: arrays once ``freeze`` has run."""

    client: list = field(default_factory=list)  # node index
    server: list = field(default_factory=list)  # node index, -1 when it failed
    start: list = field(default_factory=list)  # scheduled start, s
    latency_ms: list = field(default_factory=list)  # the timeout for a failed request
    ok: list = field(default_factory=list)

    def add(self, client: int, server: int, start: float, latency_ms: float, ok: bool) -> None:
        self.client.append(client)
        self.server.append(server)
        self.start.append(start)
        self.latency_ms.append(latency_ms)
        self.ok.append(ok)

    def freeze(self) -> "Samples":
        order = np.argsort(np.asarray(self.start, dtype=float), kind="stable")
        return Samples(*(np.asarray(getattr(self, f), dtype=dt)[order] for f, dt in
                         (("client", int), ("server", int), ("start", float), ("latency_ms", float),
                          ("ok", bool))))

    def __len__(self) -> int:
        return len(self.start)


class PodQueue:
    """One pod: a FIFO queue in front of ``workers`` servers that share the pod's CFS quota."""

    def __init__(self, env: simpy.Environment, pod: Pod, cfs_period_s: float = CFS_PERIOD_S) -> None:
        self.env, self.pod = env, pod
        self.resource = simpy.Resource(env, capacity=pod.workers)
        unlimited = pod.cpu_limit is None or pod.cpu_limit >= pod.workers
        self.quota_s = None if unlimited else pod.cpu_limit * cfs_period_s
        self.cfs_period_s = cfs_period_s
        self.cpu_s = 0.0  # CPU used so far (what the metrics read)
        self._period = -1
        self._used_in_period = 0.0

    def serve(self, cpu_s: float):
        """Queue, then burn ``cpu_s`` of CPU under the quota (a SimPy process body)."""
        with self.resource.request() as turn:
            yield turn
            yield from self._burn(cpu_s)

    def _burn(self, cpu_s: float):
        env, remaining = self.env, cpu_s
        if self.quota_s is None:
            yield env.timeout(remaining)
            self.cpu_s += remaining
            return
        while remaining > 1e-12:
            k = math.floor(env.now / self.cfs_period_s + 1e-9)
            if k != self._period:
                self._period, self._used_in_period = k, 0.0
            left = self.quota_s - self._used_in_period
            if left <= 1e-12:  # throttled until the next period
                yield env.timeout((k + 1) * self.cfs_period_s - env.now)
                continue
            run = min(remaining, left)
            yield env.timeout(run)
            self._used_in_period += run
            self.cpu_s += run
            remaining -= run


class ClusterSim:
    """One run: ``policies[i]`` decides for node i; clients send; samples collect.

    The monitor (monitor.py) is started by the caller with ``start_monitor``; it
    reads ``pod_queues`` and hands snapshots to ``policies``.
    """

    def __init__(self, cluster: Cluster, clients: list[Client], workload: Workload, policies: list[Policy],
                 policy_label: str, *, end_s: float, seed: int) -> None:
        self.env = simpy.Environment()
        self.cluster, self.clients, self.workload = cluster, clients, workload
        self.policies = policies
        self.end_s = end_s
        self.seed = seed
        self.samples = Samples()
        self.pod_queues = [PodQueue(self.env, p) for p in cluster.pods]
        self._by_addr = {p.addr: (q, p.node) for p, q in zip(cluster.pods, self.pod_queues)}
        self._rtt_s = np.asarray(cluster.rtt_ms, dtype=float) / 1000.0
        self._serial = policy_label in workload.serial_dial
        self._dialers = [simpy.Resource(self.env, capacity=1) for _ in cluster.nodes] if self._serial else []
        self._rng = random.Random(seed)  # service times
        self._in_flight: dict[int, tuple[int, float]] = {}
        self._next_id = 0
        for svc in sorted({c.service for c in clients} | {p.service for p in cluster.pods}):
            eps = cluster.endpoints(svc)
            for node in sorted({c.node for c in clients if c.service == svc}):
                policies[node].set_endpoints(svc, eps)
        for k, c in enumerate(clients):
            self.env.process(self._arrivals(c, random.Random(seed * 1_000_003 + k)))

    # -- load --

    def _arrivals(self, c: Client, rng: random.Random):
        env, periodic = self.env, self.workload.arrivals == "periodic"
        ip = f"10.250.{c.node // 256}.{c.node % 256}"
        while env.now < self.end_s:
            rate, until = c.rate_at(env.now)
            if rate <= 0:
                if until == math.inf:
                    return
                yield env.timeout(until - env.now)
                continue
            # periodic: request i of a step at from + i / rate, as rap.loadgen's open loop
            start = env.now
            i = 0
            while True:
                t = start + i / rate if periodic else env.now + rng.expovariate(rate)
                if t >= until or t >= self.end_s:
                    break
                if t > env.now:
                    yield env.timeout(t - env.now)
                env.process(self._request(c, ip))
                i += 1
            if until == math.inf or until >= self.end_s:
                return
            if until > env.now:
                yield env.timeout(until - env.now)

    def _request(self, c: Client, client_ip: str):
        env, w = self.env, self.workload
        t0 = env.now
        rid = self._next_id
        self._next_id += 1
        self._in_flight[rid] = (c.node, t0)
        policy = self.policies[c.node]
        ep = policy.next_endpoint(c.service, client_ip, t0)
        queue, node = self._by_addr[ep.addr]
        rtt = float(self._rtt_s[c.node, node]) if node != c.node else 0.0
        if self._serial:
            with self._dialers[c.node].request() as accept:
                yield accept
                if rtt:
                    yield env.timeout(rtt)  # the dial, inside the accept loop
            if rtt:
                yield env.timeout((ROUND_TRIPS_BEFORE_POD - 1) * rtt)
        elif rtt:
            yield env.timeout(ROUND_TRIPS_BEFORE_POD * rtt)
        cpu_s = (w.cpu_ms + w.http_cpu_ms) / 1000.0
        if w.service_times == "exponential":
            cpu_s = self._rng.expovariate(1.0 / cpu_s)
        yield from queue.serve(cpu_s)
        yield env.timeout(ROUND_TRIPS_AFTER_POD * rtt + w.overhead_ms / 1000.0)
        policy.release(c.service, ep)
        del self._in_flight[rid]
        latency = env.now - t0
        ok = latency <= w.timeout_s
        self.samples.add(c.node, node if ok else -1, t0, (latency if ok else w.timeout_s) * 1000.0, ok)

    def run(self) -> Samples:
        """Until every request sent before ``end_s`` ended or timed out; the samples, by start."""
        self.env.run(until=self.end_s + self.workload.timeout_s + 1e-6)
        for node, t0 in self._in_flight.values():  # still unanswered at the client's timeout
            self.samples.add(node, -1, t0, self.workload.timeout_s * 1000.0, False)
        self._in_flight.clear()
        return self.samples.freeze()


def erlang_c_sojourn_s(arrival_rps: float, service_s: float, servers: int) -> float:
    """M/M/c's mean time in system (Erlang C): what a pod queue must give with exponential times."""
    a = arrival_rps * service_s
    rho = a / servers
    if rho >= 1:
        return math.inf
    terms = sum(a ** k / math.factorial(k) for k in range(servers))
    last = a ** servers / math.factorial(servers) / (1 - rho)
    wait_probability = last / (terms + last)
    return wait_probability * service_s / (servers * (1 - rho)) + service_s
