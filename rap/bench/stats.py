"""Measures of one run, medians with spread over repetitions, and ratios of medians.

Pure functions on plain data, so they are unit-tested without a cluster.
A *sample* here is a mapping with ``start`` (seconds since the client's step
began: rap.loadgen's clock), ``latency_ms``, ``status``, ``error``, ``node``
(the node that served it) and ``client`` (the node the request came from);
rap.loadgen's Sample plus the client the runner adds.

How a run is counted (the same rules for every policy):

- A request *failed* when it has an error or a non-2xx status. Failed
  requests stay in the latency percentiles, at the client's timeout: a
  policy that drops requests must not look faster for it (a refused
  connection fails in a millisecond). They are also counted apart
  (``failed``, ``error_rate``).
- Closed-loop throughput counts the successful requests that *completed*
  inside the step (start + latency <= duration): the load generator's
  workers start requests until the step ends, and the answers that come
  after it belong to no second of the step. Open-loop throughput counts
  every successful request: the schedule, not the answers, bounds it.

Confidence intervals are rap.bench.ci's; this module gives it, per run,
the request outcomes as arrays (``Outcomes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

MEASURES = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate", "local_share")
# For each measure, whether a higher value is better (for the report's wording).
HIGHER_IS_BETTER = {"throughput_rps": True, "p50_ms": False, "p95_ms": False, "p99_ms": False,
                    "error_rate": False, "local_share": True}
PERCENTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}
# A step is cut into this many equal time blocks for the confidence intervals (rap.bench.ci).
BLOCKS = 10


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def failed(sample: Mapping) -> bool:
    """An error, or a status outside 2xx (0 is a transport error in rap.loadgen)."""
    return bool(sample.get("error")) or not 200 <= int(sample.get("status") or 0) < 300


@dataclass(frozen=True)
class Outcomes:
    """One run's requests as arrays, in request order; what the measures and the intervals use.

    ``latency_ms`` already holds the timeout for failed requests; ``counted``
    marks the requests the throughput counts; ``block`` is the time block
    (0..BLOCKS-1) of the request's start within the step.
    """

    latency_ms: np.ndarray  # float
    ok: np.ndarray  # bool
    counted: np.ndarray  # bool
    local: np.ndarray  # bool: successful and served on the client's node
    block: np.ndarray  # int
    duration_s: float

    def __len__(self) -> int:
        return len(self.latency_ms)


def outcomes(samples: Iterable[Mapping], duration_s: float, timeout_s: float, closed: bool) -> Outcomes:
    """The run's ``Outcomes``; ``closed``: the step was closed-loop (see the module's counting rules)."""
    if duration_s <= 0:
        raise ValueError("duration must be > 0")
    if timeout_s <= 0:
        raise ValueError("timeout must be > 0")
    samples = list(samples)
    ok = np.array([not failed(s) for s in samples], dtype=bool)
    measured = np.array([float(s["latency_ms"]) for s in samples], dtype=float)
    latency = np.where(ok, measured, timeout_s * 1000.0)
    start = np.array([float(s.get("start") or 0.0) for s in samples], dtype=float)
    counted = ok & (start + measured / 1000.0 <= duration_s) if closed else ok.copy()
    local = ok & np.array([bool(s.get("node")) and s.get("node") == s.get("client") for s in samples], dtype=bool)
    block = np.clip((start / duration_s * BLOCKS).astype(int), 0, BLOCKS - 1) if samples else np.zeros(0, int)
    return Outcomes(latency, ok, counted, local, block, float(duration_s))


def measures(o: Outcomes) -> dict:
    """Throughput, latency percentiles, failures and local share of one run.

    Local share: of the successful requests, those served on the node they came from.
    """
    n, n_ok = len(o), int(o.ok.sum())
    lat = o.latency_ms.tolist()
    m = {"requests": n, "ok": n_ok, "failed": n - n_ok,
         "late": n_ok - int(o.counted.sum()),  # successful, but answered after the step ended
         "throughput_rps": int(o.counted.sum()) / o.duration_s}
    m.update({name: percentile(lat, q) for name, q in PERCENTILES.items()})
    m["error_rate"] = (n - n_ok) / n if n else None
    m["local_share"] = int(o.local.sum()) / n_ok if n_ok else None
    return m


def run_measures(samples: Iterable[Mapping], duration_s: float, timeout_s: float, closed: bool = False) -> dict:
    """``measures`` of the samples of one run (see the module's counting rules)."""
    return measures(outcomes(samples, duration_s, timeout_s, closed))


def spread(values: Iterable[float | None]) -> dict:
    """Median, min, max and quartiles of the repetitions' values (None values are left out)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "q1": None, "q3": None, "n": 0}
    return {"median": percentile(xs, 50), "min": min(xs), "max": max(xs),
            "q1": percentile(xs, 25), "q3": percentile(xs, 75), "n": len(xs)}


def summarize(runs: Sequence[Mapping]) -> dict:
    """Per measure, the spread over repetitions of one scenario, policy (and rate)."""
    return {m: spread(r.get(m) for r in runs) for m in MEASURES}


def failures(runs: Sequence[Mapping]) -> dict:
    """Failed requests of all repetitions together: count, requests, share (None without requests)."""
    requests = sum(int(r.get("requests") or 0) for r in runs)
    count = sum(int(r.get("failed", round((r.get("error_rate") or 0) * (r.get("requests") or 0)))) for r in runs)
    return {"count": count, "requests": requests, "share": count / requests if requests else None}


def served(samples: Iterable[Mapping]) -> dict:
    """Per client node of one run: its requests, and how many of them each node served (successful ones).

    ``{"node-1": {"requests": 120, "nodes": {"node-1": 80, "node-4": 38}}}``: the
    two missing requests failed, and a failed request was served by no node.
    """
    out: dict = {}
    for s in samples:
        mine = out.setdefault(str(s.get("client") or ""), {"requests": 0, "nodes": {}})
        mine["requests"] += 1
        if not failed(s) and s.get("node"):
            mine["nodes"][s["node"]] = mine["nodes"].get(s["node"], 0) + 1
    return out


def served_by(runs: Sequence[Mapping]) -> dict:
    """``served`` of the repetitions together, per client: requests, served, each node's share of served."""
    total: dict = {}
    for run in runs:
        for client, mine in run.items():
            t = total.setdefault(client, {"requests": 0, "nodes": {}})
            t["requests"] += mine["requests"]
            for node, n in mine["nodes"].items():
                t["nodes"][node] = t["nodes"].get(node, 0) + n
    out = {}
    for client in sorted(total, key=node_order):
        nodes = total[client]["nodes"]
        n = sum(nodes.values())
        out[client] = {"requests": total[client]["requests"], "served": n,
                       "share": {node: nodes[node] / n for node in sorted(nodes, key=node_order)}}
    return out


def node_order(name: str) -> tuple:
    """node-2 before node-10; names without a number (a real cluster's) by name."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail), "") if tail.isdigit() else (name, -1, name)


def ratio(num: float | None, den: float | None) -> float | None:
    """num/den, or None when either is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def ratios(policy: Mapping, baseline: Mapping) -> dict:
    """Ratio of medians, measure by measure (policy / baseline)."""
    return {m: ratio(policy[m]["median"], baseline[m]["median"]) for m in MEASURES if m != "error_rate"}
