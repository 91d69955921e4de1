"""The benchmark's scenarios, as data: cluster shape, load, overload, targets.

They reproduce the kinds of experiment the RAP paper reports (Nguyen, Phan,
Kim, Sensors 22(8):2869, 2022): a balanced baseline, geo-distributed nodes at
different round-trip times, one node's pods past the overload threshold, and
rising request rates. Only the paper's abstract and figure captions could be
consulted here, so the numbers (RTTs, pods, costs, rates) are this project's,
chosen to fit a 2-core machine; each scenario's ``description`` says why its
shape is what it is.

The scenarios themselves are data, in scenarios.toml beside this module;
here are their types, their loading and their validation. Every scenario
runs the same load against the same policies (see POLICIES) on one
cluster shape; the runner switches the proxy in place between runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from rap.errors import OptionError

# label -> (local cluster proxy kind, Python policy); the kinds are those of
# rap.localcluster.proxykinds. "round-robin" is upstream kube-proxy v1.21 in
# userspace mode; "rap" is that kube-proxy with rap.go and the paper's classic
# rule, "rap-adaptive" the same build with the adaptive rule (docs/algorithm.md,
# "Two modes"); "least-request" is the project's Python userspace proxy (two
# random choices); the others are what a user would run instead of RAP:
# kube-proxy's default iptables mode, node-local routing, and HAProxy.
POLICIES: dict[str, tuple[str, str]] = {
    "round-robin": ("stock", "rap"),
    "rap": ("rap", "rap"),
    "rap-adaptive": ("rap-adaptive", "rap"),
    "least-request": ("python", "least-request"),
    "iptables": ("iptables", "rap"),
    "local-only": ("local-only", "rap"),
    "haproxy": ("haproxy", "rap"),
    "haproxy-leastconn": ("haproxy-leastconn", "rap"),
}
BASELINE = "round-robin"
# RAP is compared with the best of these, metric by metric (the lowest p50, the
# lowest p95, the highest throughput: often three different peers).
PEERS = ("iptables", "local-only", "haproxy", "haproxy-leastconn", "least-request")
# The adaptive mode must also beat what it replaces: classic RAP is one more of its
# peers (and only of its peers; classic RAP is still judged against PEERS).
EXTRA_PEERS = {"rap-adaptive": ("rap",)}
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


def peers_of(policy: str) -> tuple[str, ...]:
    """The policies ``policy`` is compared with, metric by metric, for its best peer."""
    return PEERS + EXTRA_PEERS.get(policy, ())


@dataclass(frozen=True)
class Condition:
    """One line of a bar: ``metric`` of the judged policy ``op`` ``value`` x the reference's median.

    ``op`` "<=" / ">=" compare with value x reference; "within" means between
    (1 - value) and (1 + value) x reference. Both ends are inclusive. Stated as a
    product, not a ratio, so that a reference of 0 (no failed request) still judges.
    """

    metric: str  # a stats.MEASURES name
    op: str
    value: float

    def check(self, subject: float | None, reference: float | None) -> bool | None:
        if subject is None or reference is None:
            return None
        if self.op == "<=":
            return subject <= self.value * reference
        if self.op == ">=":
            return subject >= self.value * reference
        return (1 - self.value) * reference <= subject <= (1 + self.value) * reference

    def text(self, against: str) -> str:
        if self.op == "within":
            return f"{self.metric} within {self.value:.0%} of {against}"
        return f"{self.metric} {self.op} {self.value:g}x {against}"


@dataclass(frozen=True)
class Bar:
    """What ``policy`` must reach in every step of a scenario that names this bar.

    ``against`` is "best-peer" (per condition, the best median among
    peers_of(policy) that ran: each condition's reference may be another peer)
    or "round-robin" (the baseline's median).
    """

    name: str
    policy: str
    against: str
    conditions: tuple[Condition, ...]
    description: str = ""


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
    quick_rates: tuple[float, ...] = ()  # the rates --quick runs instead; empty: the scenario's own
    duration_s: float = 8.0
    warmup_s: float = 3.0
    timeout_s: float = 10.0
    overload: Overload | None = None
    targets: tuple[Target, ...] = ()
    bar: str = ""  # the name of the Bar its steps are judged by (scenarios.toml's [[bar]]); "": none
    # cadence: RAP's monitor period and the metrics server's sampling interval and
    # CPU-rate window (rap.localcluster.config.ClusterConfig), in seconds
    rap_period_s: float = 1.0
    metrics_interval_s: float = 0.5
    metrics_window_s: float = 2.0
    # --quick leaves out scenarios whose cadence outlasts its 2 s warm-up and 3 s steps
    in_quick: bool = True

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of ClusterConfig for this shape (without the proxy)."""
        return dict(nodes=self.nodes, pods=dict(self.pods), default_pods=self.default_pods,
                    pod_cpu=self.pod_cpu, node_cpu=self.node_cpu, cpu_ms=self.cpu_ms,
                    rtt_ms={(a, b): ms for a, b, ms in self.rtt_ms}, rap_period_s=self.rap_period_s,
                    metrics_interval_s=self.metrics_interval_s, metrics_window_s=self.metrics_window_s)

    def shape_key(self) -> tuple:
        """Scenarios with equal keys can share one cluster (the runner reuses it)."""
        return (self.nodes, self.pods, self.default_pods, self.pod_cpu, self.node_cpu, self.cpu_ms, self.rtt_ms,
                self.rap_period_s, self.metrics_interval_s, self.metrics_window_s)

    def pods_on(self, node: int) -> int:
        return dict(self.pods).get(node, self.default_pods)

    def steps(self) -> list[float | None]:
        """One load step per rate (open loop) or one closed-loop step (None)."""
        return list(self.rates) if self.mode == "open" else [None]

    def seconds_per_run(self) -> float:
        return self.warmup_s + len(self.steps()) * self.duration_s


SCENARIOS_FILE = Path(__file__).with_name("scenarios.toml")


def _scenario(entry: dict, earlier: dict[str, dict]) -> Scenario:
    """One ``[[scenario]]`` table -> Scenario; lists become tuples, as the frozen dataclass keeps them.

    ``base = "NAME"`` starts from an earlier scenario's table and overrides what is given.
    """
    e = dict(entry)
    if "base" in e:
        base = e.pop("base")
        if base not in earlier:
            raise ScenarioError(f"{SCENARIOS_FILE.name}: scenario {e.get('name')!r}: base {base!r} is not an "
                                "earlier scenario")
        e = {**earlier[base], **e}
    earlier[e.get("name")] = dict(e)
    e["pods"] = tuple((int(n), c) for n, c in e.get("pods", {}).items())
    e["rtt_ms"] = tuple(tuple(r) for r in e.get("rtt_ms", ()))
    for key in ("clients", "rates", "quick_rates"):
        if key in e:
            e[key] = tuple(e[key])
    if "overload" in e:
        e["overload"] = Overload(**e["overload"])
    e["targets"] = tuple(Target(**t) for t in e.get("targets", ()))
    try:
        return Scenario(**e)
    except TypeError as exc:
        raise ScenarioError(f"{SCENARIOS_FILE.name}: scenario {e.get('name')!r}: {exc}") from None


def load(path: Path = SCENARIOS_FILE) -> dict[str, Scenario]:
    """The scenarios of ``path`` by name, in the file's order."""
    earlier: dict[str, dict] = {}
    return {s.name: s for s in (_scenario(e, earlier) for e in tomllib.loads(path.read_text())["scenario"])}


def _bar(entry: dict) -> Bar:
    e = dict(entry)
    try:
        e["conditions"] = tuple(Condition(**c) for c in e.get("conditions", ()))
        return Bar(**e)
    except TypeError as exc:
        raise ScenarioError(f"{SCENARIOS_FILE.name}: bar {e.get('name')!r}: {exc}") from None


def load_bars(path: Path = SCENARIOS_FILE) -> dict[str, Bar]:
    """The bars of ``path`` (its ``[[bar]]`` tables) by name, validated."""
    bars = {b.name: b for b in (_bar(e) for e in tomllib.loads(path.read_text()).get("bar", ()))}
    for b in bars.values():
        validate_bar(b)
    return bars


SCENARIOS: dict[str, Scenario] = load()

QUICK = {"duration_s": 3.0, "warmup_s": 2.0}


def validate_bar(b: Bar) -> Bar:
    from rap.bench.stats import MEASURES

    where = f"bar {b.name!r}"
    if b.policy not in POLICIES or b.policy == BASELINE or b.policy in PEERS:
        raise ScenarioError(f"{where}: policy {b.policy!r} must be a RAP variant of POLICIES")
    if b.against not in ("best-peer", BASELINE):
        raise ScenarioError(f"{where}: against must be best-peer or {BASELINE}, got {b.against!r}")
    if not b.conditions:
        raise ScenarioError(f"{where}: no conditions")
    for c in b.conditions:
        if c.metric not in MEASURES or c.op not in ("<=", ">=", "within") or not c.value >= 0:
            raise ScenarioError(f"{where}: bad condition {c}")
    return b


BARS: dict[str, Bar] = load_bars()


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
        for name, rates in (("rates", s.rates), ("quick_rates", s.quick_rates or s.rates)):
            if not rates or any(not 0 < r <= MAX_RATE for r in rates):
                raise ScenarioError(f"{where}: open loop needs {name} in (0, {MAX_RATE}] req/s, got {rates}")
            if list(rates) != sorted(set(rates)):
                raise ScenarioError(f"{where}: {name} must rise strictly, got {rates}")
    if s.overload is not None:
        if not 1 <= s.overload.node <= s.nodes or s.pods_on(s.overload.node) == 0:
            raise ScenarioError(f"{where}: overloaded node-{s.overload.node} has no pods")
        if s.overload.threads_per_pod < 1 or s.overload.cost_ms <= 0:
            raise ScenarioError(f"{where}: overload needs threads_per_pod >= 1 and cost_ms > 0")
    for t in s.targets:
        if t.metric not in ("p50_ms", "throughput_rps") or t.op not in ("<=", ">=", "within"):
            raise ScenarioError(f"{where}: bad target {t}")
    if s.bar and s.bar not in BARS:
        raise ScenarioError(f"{where}: bar {s.bar!r} is not one of {', '.join(BARS) or '(none)'}")
    if s.quick_rates and s.mode != "open":
        raise ScenarioError(f"{where}: quick_rates apply to the open loop only")
    from rap.localcluster.config import ClusterConfig, ClusterConfigError

    try:
        ClusterConfig(proxy="stock", **s.cluster_kwargs())
    except ClusterConfigError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return s


def _listed(text: str | None, option: str, choices) -> list[str]:
    """``"a,b"`` -> ["a", "b"], each one of ``choices``; None/"all" -> every choice."""
    if text is None or text.strip() in ("", "all"):
        return list(choices)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise ScenarioError(f"{option}: unknown {', '.join(unknown) or '(empty)'}; "
                            f"choose from {', '.join(choices)} (comma-separated)")
    if len(set(names)) != len(names):
        raise ScenarioError(f"{option}: {text!r} names one twice")
    return names


def parse_names(text: str | None) -> list[str]:
    """``"geo,overload"`` -> scenario names in the given order; None/"all" -> every scenario."""
    return _listed(text, "--scenarios", SCENARIOS)


def parse_policies(text: str | None) -> list[str]:
    """``"rap,iptables"`` -> those policies in POLICIES' order; None/"all" -> every policy."""
    names = _listed(text, "--policies", POLICIES)
    return [p for p in POLICIES if p in names]


def plan(names: list[str], *, quick: bool = False, duration: float | None = None) -> list[Scenario]:
    """The scenarios to run, adjusted for --quick and --duration, validated.

    Scenarios that share a cluster shape are kept next to each other (in the
    order first named) so the runner brings the cluster up once for them.
    """
    chosen = []
    if quick and names and not any(SCENARIOS[n].in_quick for n in names):
        raise ScenarioError(f"--quick: {', '.join(names)} left out of --quick (in_quick = false in "
                            "scenarios.toml: a production cadence slower than its 3 s steps, or a cluster of "
                            "its own too long to bring up); run without --quick")
    for n in names:
        s = SCENARIOS[n]
        if quick and not s.in_quick:
            continue
        if quick:
            s = replace(s, duration_s=QUICK["duration_s"], warmup_s=QUICK["warmup_s"],
                        rates=s.quick_rates or s.rates)
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
    """Rep 0: POLICIES in order; rep 1: rotated by one; ... (so that no policy always runs first)."""
    p = list(policies or POLICIES)
    k = rep % len(p)
    return p[k:] + p[:k]


@dataclass
class Options:
    """What `invoke bench` asked for, validated."""

    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    policies: list[str] = field(default_factory=lambda: list(POLICIES))
    reps: int = 3
    duration: float | None = None
    quick: bool = False
    out: str | None = None
    target: str = "local"

    def __post_init__(self) -> None:
        if not 1 <= self.reps <= MAX_REPS:
            raise ScenarioError(f"--reps: must be 1..{MAX_REPS}, got {self.reps}")


def estimate_seconds(scenarios: list[Scenario], reps: int, up_s: float = 15.0, switch_s: float = 4.0,
                     step_overhead_s: float = 1.5, policies: int = len(POLICIES)) -> float:
    """A rough wall-clock estimate, printed before the run starts.

    One cluster per shape; no proxy switch for the first run on a cluster, nor
    where a scenario starts with the policy the previous one ended with.
    """
    shapes = len({s.shape_key() for s in scenarios})
    runs = reps * policies * len(scenarios)
    switches = runs - len(scenarios)
    work = sum(reps * policies * (s.seconds_per_run() + step_overhead_s * len(s.steps())) for s in scenarios)
    return shapes * up_s + switches * switch_s + work
