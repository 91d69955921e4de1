"""The benchmark's scenarios, as data: cluster shape, load, overload, targets.

They reproduce the kinds of experiment the RAP paper reports (Nguyen, Phan,
Kim, Sensors 22(8):2869, 2022): a balanced baseline, geo-distributed nodes at
different round-trip times, one node's pods past the overload threshold, and
rising request rates. Only the paper's abstract and figure captions could be
consulted here, so the numbers (RTTs, pods, costs, rates) are this project's,
chosen to fit a 2-core machine; each scenario's ``description`` says why its
shape is what it is.

Every scenario runs the same load against the same three policies (see
POLICIES) on one cluster shape; the runner switches the proxy in place
between runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rap.errors import OptionError

# label -> (local cluster proxy kind, Python policy). "round-robin" is the
# upstream kube-proxy v1.21 userspace proxy; "rap" is that kube-proxy with
# rap.go; "least-request" is the project's Python userspace proxy (P2C).
POLICIES: dict[str, tuple[str, str]] = {
    "round-robin": ("stock", "rap"),
    "rap": ("rap", "rap"),
    "least-request": ("python", "least-request"),
}
BASELINE = "round-robin"
MAX_DURATION_S = 120
MAX_REPS = 20
MAX_RATE = 2000
MAX_THINK_MS = 10_000


class ScenarioError(OptionError):
    """A scenario or option that cannot run; the message names it and the fix."""


@dataclass(frozen=True)
class Overload:
    """A co-located workload holding ``node``'s pods at their CPU limit (rap.bench.overload)."""

    node: int
    threads_per_pod: int = 4
    cost_ms: float = 50.0


@dataclass(frozen=True)
class Target:
    """A pass/fail statement about a RAP/round-robin ratio of medians.

    ``op`` is "<=" or ">=" (ratio against ``value``) or "within" (|ratio-1| <= value).
    """

    metric: str  # "p50_ms" or "throughput_rps"
    op: str
    value: float

    def check(self, ratio: float | None) -> bool | None:
        if ratio is None:
            return None
        if self.op == "<=":
            return ratio <= self.value
        if self.op == ">=":
            return ratio >= self.value
        return abs(ratio - 1.0) <= self.value

    def text(self) -> str:
        if self.op == "within":
            return f"{self.metric} within {self.value:.0%} of round robin"
        return f"{self.metric} ratio {self.op} {self.value:g}"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    # cluster shape (rap.localcluster.config.ClusterConfig)
    nodes: int = 3
    pods: tuple[tuple[int, int], ...] = ()  # (node, count); others get default_pods
    default_pods: int = 2
    pod_cpu: float = 0.25
    node_cpu: float = 1.0
    cpu_ms: float = 2.0
    rtt_ms: tuple[tuple[int, int, float], ...] = ()  # (a, b, ms), a < b
    # load
    clients: tuple[int, ...] = (1,)  # node indexes the load comes from, at the same time
    mode: str = "closed"  # closed: `concurrency` workers per client; open: each rate per client
    concurrency: int = 8
    think_ms: float = 0.0  # closed loop: each worker's pause after an answer (rap.loadgen --think-ms)
    rates: tuple[float, ...] = ()
    duration_s: float = 8.0
    warmup_s: float = 3.0
    timeout_s: float = 10.0
    overload: Overload | None = None
    targets: tuple[Target, ...] = ()

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of ClusterConfig for this shape (without the proxy)."""
        return dict(nodes=self.nodes, pods=dict(self.pods), default_pods=self.default_pods,
                    pod_cpu=self.pod_cpu, node_cpu=self.node_cpu, cpu_ms=self.cpu_ms,
                    rtt_ms={(a, b): ms for a, b, ms in self.rtt_ms}, rap_period_s=1.0)

    def shape_key(self) -> tuple:
        """Scenarios with equal keys can share one cluster (the runner reuses it)."""
        return (self.nodes, self.pods, self.default_pods, self.pod_cpu, self.node_cpu, self.cpu_ms, self.rtt_ms)

    def pods_on(self, node: int) -> int:
        return dict(self.pods).get(node, self.default_pods)

    def steps(self) -> list[float | None]:
        """One load step per rate (open loop) or one closed-loop step (None)."""
        return list(self.rates) if self.mode == "open" else [None]

    def seconds_per_run(self) -> float:
        return self.warmup_s + len(self.steps()) * self.duration_s


GEO_RTT = ((1, 2, 20.0), (1, 3, 40.0), (2, 3, 30.0))

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        name="balanced",
        title="Balanced baseline",
        description=(
            "Three nodes with two pods each, no added delay between them, and the same load from every "
            "node at once: one closed-loop user per node who waits 30 ms after each answer before the next "
            "request, which holds every pod near a third of its CPU limit, well under RAP's 0.8 threshold. "
            "Round robin already spreads the load evenly here, so RAP has nothing to win: this checks that "
            "its bookkeeping costs nothing (target: within 10% of round robin on p50 latency and "
            "throughput). The think time matters: back-to-back requests would drive the pods to their "
            "limit, which is RAP's overload threshold, and the cluster would no longer be balanced. Each "
            "request burns 6 ms of CPU, not 2, so that scheduling jitter of a few tenths of a millisecond "
            "on a shared machine is a small share of the latency being compared."),
        clients=(1, 2, 3), concurrency=1, think_ms=30.0, cpu_ms=6.0,
        targets=(Target("p50_ms", "within", 0.10), Target("throughput_rps", "within", 0.10)),
    ),
    Scenario(
        name="geo",
        title="Geo-distributed nodes",
        description=(
            "Edge sites at different distances: clients on node-1, node-2 is 20 ms round trip away, node-3 "
            "40 ms (node-2 to node-3: 30 ms); two pods per node, none overloaded. Round robin sends two "
            "thirds of the connections over the slow links (and kube-proxy's userspace mode dials each "
            "backend before it accepts the next connection, so remote dials also cap its rate); RAP keeps "
            "them on node-1 while its pods have capacity."),
        rtt_ms=GEO_RTT, clients=(1,), concurrency=8,
        targets=(Target("p50_ms", "<=", 0.7), Target("throughput_rps", ">=", 1.2)),
    ),
    Scenario(
        name="overload",
        title="One node overloaded",
        description=(
            "Clients on node-1, which holds most of the Service's pods (5 of 9: the site where the users "
            "are), and a co-located workload holds all five at their CPU limit (past RAP's 0.8 threshold). "
            "Because node-1 has most of the pods, round robin keeps sending 5/9 of the connections to the "
            "saturated pods; RAP sees them overloaded and forwards to the best other node, 5 ms away. "
            "Pods get 0.15 CPU each so that the saturated ones leave node-1's proxy some of its 1-core node."),
        pods=((1, 5),), pod_cpu=0.15, rtt_ms=((1, 2, 5.0), (1, 3, 5.0), (2, 3, 5.0)),
        clients=(1,), concurrency=8, overload=Overload(node=1, threads_per_pod=6, cost_ms=50.0),
        targets=(Target("p50_ms", "<=", 0.7), Target("throughput_rps", ">=", 1.2)),
    ),
    Scenario(
        name="rates",
        title="Rising request rates (geo shape)",
        description=(
            "The geo-distributed shape under open-loop load at rising fixed rates from node-1: latency is "
            "measured from each request's scheduled start, so queueing in a proxy shows. Round robin pays "
            "the remote round trips at every rate; RAP serves locally until node-1's pods reach the "
            "threshold, then spills over to the nearest node."),
        rtt_ms=GEO_RTT, clients=(1,), mode="open", rates=(20, 80, 160, 240), duration_s=5.0,
    ),
)}

QUICK = {"duration_s": 3.0, "warmup_s": 2.0, "rates": (20, 80)}


def validate(s: Scenario) -> Scenario:
    """The scenario, or ScenarioError naming what is wrong."""
    where = f"scenario {s.name!r}"
    if not s.name or not s.name.replace("-", "").isalnum():
        raise ScenarioError(f"{where}: the name must be letters, digits and dashes")
    if s.mode not in ("open", "closed"):
        raise ScenarioError(f"{where}: mode must be open or closed, got {s.mode!r}")
    if not 0 < s.duration_s <= MAX_DURATION_S:
        raise ScenarioError(f"{where}: duration {s.duration_s}s outside (0, {MAX_DURATION_S}] s")
    if s.warmup_s < 0:
        raise ScenarioError(f"{where}: warm-up must be >= 0 s")
    if not s.clients or any(not 1 <= c <= s.nodes for c in s.clients) or len(set(s.clients)) != len(s.clients):
        raise ScenarioError(f"{where}: clients {s.clients} must be distinct nodes 1..{s.nodes}")
    if s.mode == "closed" and s.concurrency < 1:
        raise ScenarioError(f"{where}: closed loop needs concurrency >= 1")
    if not 0 <= s.think_ms <= MAX_THINK_MS:
        raise ScenarioError(f"{where}: think time {s.think_ms:g} ms outside [0, {MAX_THINK_MS:g}] ms")
    if s.think_ms and s.mode != "closed":
        raise ScenarioError(f"{where}: think time applies to the closed loop only (the open loop sets a rate)")
    if s.mode == "open":
        if not s.rates or any(not 0 < r <= MAX_RATE for r in s.rates):
            raise ScenarioError(f"{where}: open loop needs rates in (0, {MAX_RATE}] req/s, got {s.rates}")
        if list(s.rates) != sorted(set(s.rates)):
            raise ScenarioError(f"{where}: rates must rise strictly, got {s.rates}")
    if s.overload is not None:
        if not 1 <= s.overload.node <= s.nodes or s.pods_on(s.overload.node) == 0:
            raise ScenarioError(f"{where}: overloaded node-{s.overload.node} has no pods")
        if s.overload.threads_per_pod < 1 or s.overload.cost_ms <= 0:
            raise ScenarioError(f"{where}: overload needs threads_per_pod >= 1 and cost_ms > 0")
    for t in s.targets:
        if t.metric not in ("p50_ms", "throughput_rps") or t.op not in ("<=", ">=", "within"):
            raise ScenarioError(f"{where}: bad target {t}")
    from rap.localcluster.config import ClusterConfig, ClusterConfigError

    try:
        ClusterConfig(proxy="stock", **s.cluster_kwargs())
    except ClusterConfigError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return s


def parse_names(text: str | None) -> list[str]:
    """``"geo,overload"`` -> names in the given order; None/"all" -> every scenario."""
    if text is None or text.strip() in ("", "all"):
        return list(SCENARIOS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ScenarioError(f"--scenarios: unknown {', '.join(unknown) or '(empty)'}; "
                            f"choose from {', '.join(SCENARIOS)} (comma-separated)")
    if len(set(names)) != len(names):
        raise ScenarioError(f"--scenarios: {text!r} names a scenario twice")
    return names


def plan(names: list[str], *, quick: bool = False, duration: float | None = None) -> list[Scenario]:
    """The scenarios to run, adjusted for --quick and --duration, validated.

    Scenarios that share a cluster shape are kept next to each other (in the
    order first named) so the runner brings the cluster up once for them.
    """
    chosen = []
    for n in names:
        s = SCENARIOS[n]
        if quick:
            s = replace(s, duration_s=QUICK["duration_s"], warmup_s=QUICK["warmup_s"],
                        rates=QUICK["rates"] if s.mode == "open" else s.rates)
        if duration is not None:
            if not 0 < duration <= MAX_DURATION_S:
                raise ScenarioError(f"--duration: {duration:g}s outside (0, {MAX_DURATION_S}] seconds")
            s = replace(s, duration_s=float(duration))
        chosen.append(validate(s))
    order: list[tuple] = []
    for s in chosen:
        if s.shape_key() not in order:
            order.append(s.shape_key())
    return sorted(chosen, key=lambda s: order.index(s.shape_key()))


def policy_order(rep: int, policies: list[str] | None = None) -> list[str]:
    """Rep 0: rr, rap, lr; rep 1: rap, lr, rr; ... (rotated so no policy always runs first)."""
    p = list(policies or POLICIES)
    k = rep % len(p)
    return p[k:] + p[:k]


@dataclass
class Options:
    """What `invoke bench` asked for, validated."""

    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    reps: int = 3
    duration: float | None = None
    quick: bool = False
    out: str | None = None
    target: str = "local"

    def __post_init__(self) -> None:
        if not 1 <= self.reps <= MAX_REPS:
            raise ScenarioError(f"--reps: must be 1..{MAX_REPS}, got {self.reps}")


def estimate_seconds(scenarios: list[Scenario], reps: int, up_s: float = 15.0, switch_s: float = 4.0,
                     step_overhead_s: float = 1.5) -> float:
    """A rough wall-clock estimate, printed before the run starts.

    One cluster per shape; no proxy switch for the first run on a cluster, nor
    where a scenario starts with the policy the previous one ended with.
    """
    shapes = len({s.shape_key() for s in scenarios})
    runs = reps * len(POLICIES) * len(scenarios)
    switches = runs - len(scenarios)
    work = sum(reps * len(POLICIES) * (s.seconds_per_run() + step_overhead_s * len(s.steps())) for s in scenarios)
    return shapes * up_s + switches * switch_s + work
