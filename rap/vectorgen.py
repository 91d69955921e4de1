"""Random conformance vectors, answered by the Python reference, for the differential test.

The hand-written vectors (tests/vectors/) show each rule once; this module
makes many more in the same format (tests/vectors/README.md), drawn so that
every rule and its edges come up often: both modes, configurations across the
table's ranges, nodes without a name, multi-port Services, usage above 1,
inputs exactly at the staleness bound, RTTs of 0 or absent, short affinity
timeouts, retries inside and outside the 20 s window, connections ending,
endpoint churn through both update paths, new snapshots. Numbers come mostly
from a coarse grid (multiples of 0.05, whole and half seconds, a few RTTs) so
that costs, scores and time bounds tie, plus some arbitrary floats.

Nothing here decides anything: each request's ``expect`` (or ``expect_error``)
is what the Python reference (rap.vectors.run_vector) answers. The Go harness
(rap_patch/vectors_test.go, via tests/e2e/test_differential.py) then replays
the same files, so any mismatch is a disagreement between the two.

Steps that depend on earlier answers (a ``done`` for an endpoint handed out
before) are drawn after replaying the vector so far on the reference.

``python3 -m rap.vectorgen --out DIR --decisions N --seed S`` writes a set;
``invoke test-differential`` writes one and replays it on rap.go;
``vectors()`` is the same generator as a hypothesis strategy (its draws come
from hypothesis, so a failing example shrinks).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from rap.config import DECISION_FIELDS, FIELDS, RapConfig
from rap.errors import UserError
from rap.policies.bookkeeping import RETRY_WINDOW_S
from rap.vectors import BASE_SRC_PORT, DEFAULT_PORT_NAME, SCHEMA_PATH, Vector, run_vector

# An answer no endpoint can have (port 0), so the runner reports every request's real answer.
_PROBE = "0.0.0.0:0"
_PORT_NUMBERS = {"http": 8080, "grpc": 9090}
_NODES = [f"node-{c}" for c in "abcdefgh"]
_CLIENTS = [f"192.0.2.{i}" for i in range(1, 6)]
_USAGE_GRID = [round(0.05 * k, 2) for k in range(31)]  # 0 .. 1.5
_RTT_GRID = [0, 0, 1, 2, 5, 10, 10, 20, 50]
_STEP_KINDS = {  # weights; requests dominate, every other step kind comes up in most vectors
    "request": 40, "retry": 14, "reset-new-src": 3, "done": 14,
    "set_endpoints": 6, "add_endpoints": 3, "set_metrics": 10, "at-bound": 6,
}


class GeneratorError(UserError):
    """The reference answered a generated request with something a vector cannot say."""


# ---- small draws ----

def _maybe(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _pick(rng: random.Random, options: list[Any]) -> Any:
    return options[rng.randrange(len(options))]


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _grid_or_any(rng: random.Random, grid: list[float], lo: float, hi: float, p_any: float = 0.1) -> float:
    return rng.uniform(lo, hi) if _maybe(rng, p_any) else _pick(rng, grid)


# ---- configuration and service ----

_CONFIG_GRIDS: dict[str, list[float]] = {
    "period_s": [1, 2, 5, 10],
    "stale_after_s": [0.5, 1, 2.5, 5, 10, 15, 30],
    "cpu_threshold": [0.05, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1],
    "mem_threshold": [0.5, 0.7, 0.8, 0.9, 1],
    "w_cpu": [0, 0.1, 0.25, 0.5, 1, 2],
    "w_mem": [0, 0.1, 0.2, 0.5, 1],
    "w_net": [0, 0.1, 0.3, 0.5, 1],
    "hysteresis": [0, 0.05, 0.1, 0.2, 0.5, 0.9],  # 0.9: above some thresholds, so a hot item never cools
    "rtt_per_conn_ms": [0.5, 1, 2, 5, 10, 20, 50],
    "eject_s": [0.5, 1, 2, 5, 10, 30],
}


def _config_value(rng: random.Random, name: str) -> float:
    f = FIELDS[name]
    value = _pick(rng, _CONFIG_GRIDS[name])
    if _maybe(rng, 0.1):  # an arbitrary float inside the field's range
        lo = f.min if f.min is not None else 0.0
        hi = f.max if f.max is not None else 2 * max(_CONFIG_GRIDS[name])
        value = rng.uniform(lo, hi)
    try:
        return f.check(value)
    except ValueError:  # uniform() landed on an open bound
        return f.check(_pick(rng, [v for v in _CONFIG_GRIDS[name] if v]))


def _config(rng: random.Random) -> dict[str, Any]:
    while True:
        cfg: dict[str, Any] = {}
        mode = _pick(rng, ["adaptive", "classic", None])
        if mode:
            cfg["mode"] = mode
        for f in DECISION_FIELDS:
            if f.name in _CONFIG_GRIDS and _maybe(rng, 0.35):
                cfg[f.name] = _config_value(rng, f.name)
        if _maybe(rng, 0.25):  # equal CPU and memory weights: with mirrored nodes, scores tie to the last bit or nearly
            cfg["w_cpu"] = cfg["w_mem"] = _pick(rng, [0.1, 0.2, 0.3, 0.5, 1])
        try:
            RapConfig.from_mapping(cfg)
        except ValueError:  # all weights 0: draw again
            continue
        return cfg


def _service(rng: random.Random) -> dict[str, Any]:
    if _maybe(rng, 0.5):
        return {"affinity": "None"}
    svc: dict[str, Any] = {"affinity": "ClientIP"}
    timeout = _pick(rng, [None, 0, 1, 2, 3, 5, 10, 30])
    if timeout is not None:
        svc["affinity_timeout_s"] = timeout
    return svc


# ---- the cluster: pods, endpoints, metrics ----

@dataclass(frozen=True)
class _Pod:
    ip: str
    node: str  # "": a selectorless Service's manual endpoint


@dataclass
class _Cluster:
    nodes: list[str]
    local: str
    port_names: list[str]
    ports: dict[str, int]  # port name -> number
    next_ip: int = 1

    def new_pod(self, rng: random.Random) -> _Pod:
        self.next_ip += 1
        kind = _weighted(rng, {"none": 1, "local": 3, "any": 7})
        if kind == "none":
            node = ""
        elif kind == "local" and self.local in self.nodes:  # so the local rules come up often
            node = self.local
        else:
            node = _pick(rng, self.nodes)
        subnet = self.nodes.index(node) + 1 if node else 99
        return _Pod(f"10.{subnet}.{self.next_ip // 250}.{self.next_ip % 250 + 1}", node)


def _cluster(rng: random.Random) -> _Cluster:
    nodes = _NODES[: rng.randint(1, 8)]
    # Mostly a node with endpoints, sometimes one without any (or unknown to the snapshot).
    local = _pick(rng, nodes) if _maybe(rng, 0.85) else "node-z"
    multi = _maybe(rng, 0.2)
    port_names = ["http", "grpc"] if multi else ["http"]
    ports = {p: _PORT_NUMBERS[p] for p in port_names}
    return _Cluster(nodes, local, port_names, ports)


def _endpoint_json(pod: _Pod, port_name: str, port: int, rng: random.Random) -> dict[str, Any]:
    ep: dict[str, Any] = {"ip": pod.ip, "port": port, "node": pod.node}
    if port_name != DEFAULT_PORT_NAME or _maybe(rng, 0.2):
        ep["port_name"] = port_name
    return ep


def _endpoints(rng: random.Random, cluster: _Cluster, pods: list[_Pod]) -> list[dict[str, Any]]:
    out = []
    for pod in pods:
        for name in cluster.port_names:
            # In a multi-port Service a pod now and then serves only some of the ports.
            if len(cluster.port_names) == 1 or not _maybe(rng, 0.15):
                out.append(_endpoint_json(pod, name, cluster.ports[name], rng))
    return out


@dataclass
class _Sampler:
    """Draws of measurements for one vector; its usage values come mostly from a small palette, so samples tie."""

    rng: random.Random
    cfg: RapConfig
    palette: list[float]

    @classmethod
    def create(cls, rng: random.Random, cfg: RapConfig) -> "_Sampler":
        return cls(rng, cfg, rng.sample(_USAGE_GRID, rng.randint(2, 6)))

    def value(self, threshold: float, calm: float = 0.0) -> float:
        rng, d = self.rng, self.cfg.hysteresis
        below = [v for v in self.palette + _USAGE_GRID if v < threshold]
        if below and _maybe(rng, calm):
            return _pick(rng, below)
        kind = _weighted(rng, {"palette": 8, "grid": 4, "threshold": 2, "cooled": 2, "between": 1, "any": 2})
        if kind == "threshold":
            return threshold
        if kind == "cooled":  # exactly where a hot item turns cool: threshold - hysteresis as the spec computes it
            return max(0.0, threshold - d)
        if kind == "between":
            return max(0.0, threshold - d / 2)
        if kind == "any":
            return rng.uniform(0, 1.5)
        return _pick(rng, self.palette if kind == "palette" else _USAGE_GRID)

    def at(self, now: float) -> float:
        rng, stale_after = self.rng, self.cfg.stale_after_s
        kind = _weighted(rng, {"now": 6, "recent": 4, "bound": 2, "stale": 2, "any": 1})
        at = {
            "now": now,
            "recent": now - _pick(rng, [0.5, 1, 2, 5]),
            "bound": now - stale_after,  # fresh until exactly now: the freshness rule's edge
            "stale": now - stale_after - _pick(rng, [0.5, 1, 10]),
            "any": now - rng.uniform(0, 2 * stale_after),
        }[kind]
        return max(0.0, at)

    def usage(self, now: float, calm: float = 0.0) -> dict[str, float]:
        """A sample; ``calm`` is the chance of each value being below its threshold for sure."""
        return {"cpu": self.value(self.cfg.cpu_threshold, calm), "mem": self.value(self.cfg.mem_threshold, calm),
                "at": self.at(now)}

    def rtt(self, now: float) -> dict[str, float]:
        ms = self.rng.uniform(0, 80) if _maybe(self.rng, 0.1) else _pick(self.rng, _RTT_GRID)
        return {"ms": ms, "at": self.at(now)}


def _carry(rng: random.Random, previous: dict[str, Any], key: str, fresh: dict[str, Any]) -> dict[str, Any] | None:
    """A new snapshot's item: often the previous sample again, sometimes gone."""
    if key in previous and _maybe(rng, 0.3):
        return previous[key]
    return None if _maybe(rng, 0.12) else fresh


def _metrics(sampler: _Sampler, cluster: _Cluster, pods: list[_Pod], now: float,
             previous: dict[str, Any] | None = None) -> dict[str, Any]:
    rng, previous = sampler.rng, previous or {}
    out: dict[str, dict[str, Any]] = {"pods": {}, "nodes": {}, "rtt_ms": {}}
    for ip in sorted({p.ip for p in pods}):
        _put(out["pods"], ip, _carry(rng, previous.get("pods", {}), ip, sampler.usage(now)))
    busy = {p.node for p in pods}
    extra = ["node-y"] if _maybe(rng, 0.1) else []  # a node without endpoints still sets rtt_max
    for node in [*cluster.nodes, *extra]:
        # Nodes are mostly below the thresholds (as in a cluster that works), so several compete.
        usage, rtt = sampler.usage(now, calm=0.6), sampler.rtt(now)
        hosts = [n for n in out["nodes"] if n in busy and n != cluster.local]
        twin = _pick(rng, hosts) if hosts and node in busy and _maybe(rng, 0.3) else None
        if twin is not None:  # as far from the local node as its twin, with the same cpu + mem
            usage, rtt = _mirrored(rng, out["nodes"][twin], usage), out["rtt_ms"].get(twin, rtt)
        _put(out["nodes"], node, _carry(rng, previous.get("nodes", {}), node, usage))
        # An RTT to the local node itself sometimes, which rtt_max must not count.
        if node != cluster.local or _maybe(rng, 0.1):
            _put(out["rtt_ms"], node, _carry(rng, previous.get("rtt_ms", {}), node, rtt))
    return {k: v for k, v in out.items() if v or _maybe(rng, 0.5)}


def _mirrored(rng: random.Random, other: dict[str, float], fallback: dict[str, float]) -> dict[str, float]:
    """Another node's usage with CPU and memory shifted by the same step in opposite directions.

    cpu + mem is the same on paper, so with equal weights the two nodes' scores
    tie, but float rounding often leaves them an ulp or so apart: the case the
    1e-9 tie tolerance exists for.
    """
    step = _pick(rng, [0.05, 0.1, 0.15, 0.3, -0.05, -0.1, -0.15, -0.3])
    cpu, mem = round(other["cpu"] + step, 2), round(other["mem"] - step, 2)
    return {**other, "cpu": cpu, "mem": mem} if min(cpu, mem) >= 0 else fallback


def _put(table: dict[str, Any], key: str, value: dict[str, Any] | None) -> None:
    if value is not None:
        table[key] = value


# ---- steps ----

@dataclass
class _Request:
    step: int
    client: str
    src_port: int
    port_name: str
    at: float


@dataclass
class _Run:
    """What the step generator knows so far."""

    rng: random.Random
    cluster: _Cluster
    sampler: _Sampler
    pods: list[_Pod]
    metrics: dict[str, Any]
    data: dict[str, Any]  # the vector being built
    now: float
    metrics_at: float = 0.0  # when the last snapshot was taken
    requests: list[_Request] = field(default_factory=list)
    next_src_port: int = 50000

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.data["steps"]


def _advance(run: _Run) -> float:
    rng = run.rng
    kind = _weighted(rng, {"grid": 85, "any": 8, "long": 7})
    if kind == "long":  # past affinity timeouts, ejections and (often) the metrics' freshness
        gap = _pick(rng, [10, 20.5, 40])
    else:
        gap = rng.uniform(0, 3) if kind == "any" else _pick(rng, [0, 0, 0.5, 0.5, 1, 1, 2, 3, 5])
    run.now += gap
    return run.now


def _port_name(run: _Run) -> str:
    return _pick(run.rng, run.cluster.port_names)


def _add_request(run: _Run, client: str, src_port: int | None, port_name: str, at: float,
                 reset: bool) -> None:
    step = len(run.steps)
    req: dict[str, Any] = {"client": client, "at": at}
    if reset:
        req["affinity_reset"] = True
    if src_port is None:  # the format's default, which a later retry may repeat explicitly
        src_port = BASE_SRC_PORT + step
    else:
        req["src_port"] = src_port
    if port_name != DEFAULT_PORT_NAME or _maybe(run.rng, 0.1):
        req["port_name"] = port_name
    run.steps.append({"request": req, "expect": _PROBE})
    run.requests.append(_Request(step, client, src_port, port_name, at))


def _src_port(run: _Run) -> int | None:
    run.next_src_port += 1
    return None if _maybe(run.rng, 0.2) else run.next_src_port - 1


def _new_request(run: _Run, reset: bool = False) -> None:
    _add_request(run, _pick(run.rng, _CLIENTS), _src_port(run), _port_name(run), _advance(run), reset)


def _retry(run: _Run) -> None:
    """The same client and source port again with affinity_reset: a failed dial's retry."""
    if not run.requests:
        return _new_request(run)
    prev = _pick(run.rng, run.requests[-6:])
    elapsed = _pick(run.rng, [0, 0.5, 1, 5, RETRY_WINDOW_S - 0.5, RETRY_WINDOW_S, RETRY_WINDOW_S + 0.5, 30])
    run.now = max(run.now, prev.at + elapsed)
    _add_request(run, prev.client, prev.src_port, prev.port_name, run.now, reset=True)


def _bounds(run: _Run) -> list[float]:
    """Times ahead at which a rule's bound falls: an ejection ends, a sample goes stale, an affinity expires."""
    cfg, ttl = run.sampler.cfg, run.data["service"].get("affinity_timeout_s", 0)
    times = [item["at"] + cfg.stale_after_s for table in run.metrics.values() for item in table.values()]
    for r in run.requests[-8:]:
        times += [r.at + cfg.eject_s, r.at + RETRY_WINDOW_S]
        if ttl and run.data["service"]["affinity"] == "ClientIP":
            times.append(r.at + ttl)
    return sorted(t for t in set(times) if t >= run.now)


def _request_at_bound(run: _Run) -> None:
    bounds = _bounds(run)
    if not bounds:
        return _new_request(run)
    run.now = _pick(run.rng, bounds[:4])
    if run.requests and _maybe(run.rng, 0.4):  # a retry exactly at the window's or the ejection's end
        prev = _pick(run.rng, run.requests[-4:])
        return _add_request(run, prev.client, prev.src_port, prev.port_name, run.now, reset=True)
    _add_request(run, _pick(run.rng, _CLIENTS), _src_port(run), _port_name(run), run.now, reset=False)


def _done(run: _Run) -> None:
    answered = [(r, a) for r, a in zip(run.requests, answers(run.data)) if not a.startswith("error")]
    if not answered or _maybe(run.rng, 0.08):  # an address this proxy never handed out
        target, port_name = f"10.77.0.1:{run.cluster.ports[DEFAULT_PORT_NAME]}", DEFAULT_PORT_NAME
    else:
        req, target = _pick(run.rng, answered[-8:])
        port_name = req.port_name
    done: dict[str, Any] = {"endpoint": target}
    if port_name != DEFAULT_PORT_NAME or _maybe(run.rng, 0.2):
        done["port_name"] = port_name
    run.steps.append({"done": done})


def _churned_pods(run: _Run) -> list[_Pod]:
    rng, pods = run.rng, list(run.pods)
    kind = _weighted(rng, {"reorder": 3, "renode": 2, "remove": 3, "add": 3, "empty": 1, "same": 1})
    if not pods:  # an emptied Service comes back
        kind = "add"
    if kind == "reorder":
        rng.shuffle(pods)
    elif kind == "renode":  # same set, some pods now report another node (or none)
        pods = [_Pod(p.ip, _pick(rng, [*run.cluster.nodes, ""])) if _maybe(rng, 0.4) else p for p in pods]
    elif kind == "remove" and pods:
        pods = [p for p in pods if not _maybe(rng, 0.4)]
    elif kind == "add":
        pods += [run.cluster.new_pod(rng) for _ in range(rng.randint(1, 3))]
        rng.shuffle(pods)
    elif kind == "empty":
        pods = []
    return pods[:12]


def _set_endpoints(run: _Run, key: str) -> None:
    run.pods = _churned_pods(run)
    run.steps.append({key: _endpoints(run.rng, run.cluster, run.pods)})


def _set_metrics(run: _Run) -> None:
    run.metrics = _metrics(run.sampler, run.cluster, run.pods, run.now, run.metrics)
    run.metrics_at = run.now
    run.steps.append({"set_metrics": run.metrics})


def _step(run: _Run) -> None:
    weights = _STEP_KINDS
    if run.now - run.metrics_at > run.sampler.cfg.stale_after_s:  # the monitor would have sampled by now
        weights = {**weights, "set_metrics": 8 * weights["set_metrics"]}
    kind = _weighted(run.rng, weights)
    if kind == "request":
        _new_request(run)
    elif kind == "retry":
        _retry(run)
    elif kind == "reset-new-src":  # affinity_reset with no earlier dial from that source
        _new_request(run, reset=True)
    elif kind == "at-bound":
        _request_at_bound(run)
    elif kind == "done":
        _done(run)
    elif kind == "set_metrics":
        _set_metrics(run)
    else:
        _set_endpoints(run, kind)


# ---- the vector ----

@lru_cache(maxsize=1)
def _schema_rules() -> frozenset[str]:
    schema = json.loads(SCHEMA_PATH.read_text())
    return frozenset(schema["properties"]["rules"]["items"]["enum"])


def _rules(data: dict[str, Any]) -> list[str]:
    steps = data["steps"]
    endpoint_lists = [data["endpoints"], *(s.get("set_endpoints") or s.get("add_endpoints") or [] for s in steps)]
    has = {
        "adaptive": data.get("config", {}).get("mode", "adaptive") == "adaptive",
        "scoring": data.get("config", {}).get("mode") == "classic",
        "affinity": data["service"]["affinity"] == "ClientIP",
        "retry": any(s.get("request", {}).get("affinity_reset") for s in steps),
        "active": any("done" in s for s in steps),
        "churn": any("set_endpoints" in s for s in steps),
        "endpoints-add": any("add_endpoints" in s for s in steps),
        "config": bool(set(data.get("config", {})) - {"mode"}),
        "multi-port": any(e.get("port_name", DEFAULT_PORT_NAME) != DEFAULT_PORT_NAME
                          for eps in endpoint_lists for e in eps),
        "selectorless": any(e["node"] == "" for eps in endpoint_lists for e in eps),
    }
    return [rule for rule, yes in has.items() if yes and rule in _schema_rules()] or ["round-robin"]


def _vector(name: str, data: dict[str, Any]) -> Vector:
    return Vector(Path(f"{name}.json"), data)


def answers(data: dict[str, Any]) -> list[str]:
    """The Python reference's answer to every request of ``data``, in order ("error ..." for a refusal)."""
    probe = {**data, "steps": [_probed(s) for s in data["steps"]]}
    mismatches = run_vector(_vector(data["name"], probe))
    return [m.actual for m in sorted(mismatches, key=lambda m: m.request_index)]


def _probed(step: dict[str, Any]) -> dict[str, Any]:
    if "request" not in step:
        return step
    return {"request": step["request"], "expect": _PROBE}


def _expected(step: dict[str, Any], answer: str) -> dict[str, Any]:
    if answer == "error no-endpoints":
        return {"request": step["request"], "expect_error": "no-endpoints"}
    if answer.startswith("error"):
        raise GeneratorError(f"the reference answered {step['request']} with {answer!r}, "
                             "which a vector cannot expect")
    return {"request": step["request"], "expect": answer}


def generate_vector(rng: random.Random, name: str, requests: int | None = None) -> dict[str, Any]:
    """One vector with about ``requests`` requests (default: 5 to 40), every expect from the reference."""
    target = requests or rng.randint(5, 40)
    cfg_json = _config(rng)
    cfg = RapConfig.from_mapping(cfg_json)
    cluster = _cluster(rng)
    pods = [cluster.new_pod(rng) for _ in range(rng.randint(1, 12) if _maybe(rng, 0.97) else 0)]
    now = float(_pick(rng, [0, 1, 5, 30, 100]))
    sampler = _Sampler.create(rng, cfg)
    metrics = _metrics(sampler, cluster, pods, now)
    data: dict[str, Any] = {
        "name": name,
        "description": "",
        "rules": [],
        "local_node": cluster.local,
        **({"config": cfg_json} if cfg_json else {}),
        "service": _service(rng),
        "endpoints": _endpoints(rng, cluster, pods),
        "metrics": metrics,
        "steps": [],
    }
    run = _Run(rng, cluster, sampler, pods, metrics, data, now, metrics_at=now)
    while len(run.requests) < target:
        _step(run)
    data["steps"] = [_expected(s, a) if "request" in s else s
                     for s, a in zip(data["steps"], _aligned(data))]
    data["rules"] = _rules(data)
    data["description"] = (f"Generated by rap.vectorgen: {len(run.requests)} requests in "
                           f"{cfg.mode} mode; every expect is the Python reference's answer.")
    return data


def _aligned(data: dict[str, Any]) -> list[str | None]:
    """One entry per step: the reference's answer for a request, None for any other step."""
    found = iter(answers(data))
    return [next(found) if "request" in s else None for s in data["steps"]]


def vectors(prefix: str = "hyp"):
    """A hypothesis strategy of generated vectors; draws go through hypothesis, so examples shrink."""
    from hypothesis import strategies as st

    counter = iter(range(10**9))
    return st.randoms(use_true_random=False).map(
        lambda rng: generate_vector(rng, f"{prefix}-{next(counter):06d}"))


# ---- writing a set ----

@dataclass(frozen=True)
class Summary:
    vectors: int
    decisions: int
    out: Path
    seed: int

    def __str__(self) -> str:
        return f"{self.vectors} vectors, {self.decisions} decisions (seed {self.seed}) in {self.out}"


def count_requests(data: dict[str, Any]) -> int:
    return sum(1 for s in data["steps"] if "request" in s)


def write_vectors(out: Path | str, decisions: int, seed: int, prefix: str = "gen") -> Summary:
    """Vectors with at least ``decisions`` requests in all, as ``out/<prefix>-<seed>-<n>.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    total = count = 0
    while total < decisions:
        name = f"{prefix}-{seed}-{count:05d}"
        data = generate_vector(rng, name)
        (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        total += count_requests(data)
        count += 1
    return Summary(count, total, out, seed)


DEFAULT_DECISIONS = 10000
SEEDS = 2**32


def differential(decisions: int | str | None = None, seed: int | str | None = None,
                 out: Path | str | None = None) -> str:
    """`invoke test-differential`: write a set, then replay it on rap.go (go test -run TestRAPVectors).

    The set goes to ``out`` (new or empty), by default build/differential/run-SEED,
    and stays there, so a disagreement can be replayed. A mismatch fails go test,
    which raises BuildError naming it; the mismatching requests are in go's output.
    """
    from rap.build import gotest
    from rap.options import count, new_or_empty_folder
    from rap.paths import BUILD_DIR

    decisions = count("--decisions", decisions, DEFAULT_DECISIONS)
    seed = count("--seed", seed, random.SystemRandom().randrange(SEEDS), lo=0, hi=SEEDS - 1)
    # The Go harness replays every *.json in the folder, so it must hold only this set.
    out = Path(new_or_empty_folder("--out", out) or BUILD_DIR / "differential" / f"run-{seed}")
    new_or_empty_folder("--out", out)
    summary = write_vectors(out, decisions, seed)
    print(f"generated {summary}; replaying on rap.go", flush=True)
    gotest.test_proxy(vectors_dir=out, run="^TestRAPVectors$", verbose=False)
    return f"rap.go agrees with the reference on {summary}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m rap.vectorgen",
        description="Write random conformance vectors (tests/vectors/README.md format) whose expected "
                    "answers are the Python reference's, for replaying on rap.go "
                    "(RAP_VECTORS_DIR=DIR go test -run TestRAPVectors).")
    p.add_argument("--out", required=True, type=Path, help="directory to write *.json into (created if missing)")
    p.add_argument("--decisions", type=int, default=10000,
                   help="write vectors until they hold at least this many requests in all (default 10000)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the generator; the same seed writes the same files (default: a random one, printed)")
    p.add_argument("--prefix", default="gen", help="file and vector name prefix (default gen)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    try:
        summary = write_vectors(args.out, args.decisions, seed, args.prefix)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
